import { readFileSync } from 'node:fs';

/** Busy and total jiffies of each CPU (`/proc/stat`), or null where there is no such file. */
export type CpuTimes = { busy: number; total: number }[] | null;

export function cpuTimes(): CpuTimes {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  const cpus: { busy: number; total: number }[] = [];
  for (const line of text.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) {
      continue;
    }
    // user nice system idle iowait irq softirq steal …
    const fields = (match[2] ?? '').trim().split(/\s+/).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.slice(0, 8).reduce((sum, v) => sum + v, 0);
    cpus[Number(match[1])] = { busy: total - idle, total };
  }
  return cpus;
}

/** Busy share of each CPU between two readings, in % (everything on the machine counts). */
export function busyPercent(before: CpuTimes, after: CpuTimes): number[] | null {
  if (!before || !after) {
    return null;
  }
  return after.map((cpu, i) => {
    const prev = before[i];
    if (!prev || cpu.total === prev.total) {
      return Number.NaN;
    }
    return ((cpu.busy - prev.busy) / (cpu.total - prev.total)) * 100;
  });
}
