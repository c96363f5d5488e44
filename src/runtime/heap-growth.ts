import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { flagGiven } from './node-flags.js';

/**
 * After each full collection V8 sets the next one's trigger at the live heap times a factor it
 * picks (up to 4) from how fast it marks. A gateway's live heap is small and marks fast, so V8
 * picks near 4: under a closed loop of 50-message pages the old generation grew to 66 MB, mostly
 * requests' objects already dead, for ~20 MB live (peak RSS 174–186 MB). While the live heap is
 * small a full collection costs a few ms, so the gateway asks for 50% headroom instead (peak RSS
 * 124 MB; 20% gave no less, and CPU per request stayed within the runs' noise). Past 64 MB live
 * the factor goes back to V8's: there a full collection pauses the process long enough to show in
 * delivery latency (10,000 subscriptions, 140 MB live, with a fixed 20% or 50%: delivery p99
 * 28 → 257–282 ms). The live size is read after each full collection, so a setting applies from
 * the next one. A heap growth flag given on the command line is left alone (NODE_OPTIONS cannot
 * carry it).
 */
const SMALL_HEAP_BYTES = 64 * 1024 * 1024;
const SMALL_HEAP_GROWING_PERCENT = 50;
/** 0 is V8's own choice of factor. */
const V8_DEFAULT = 0;

const configured = flagGiven('heap-growing');

export function boundHeapGrowth(): void {
  if (configured) {
    return;
  }
  let percent = -1;
  const apply = () => {
    const next =
      getHeapStatistics().used_heap_size < SMALL_HEAP_BYTES
        ? SMALL_HEAP_GROWING_PERCENT
        : V8_DEFAULT;
    if (next !== percent) {
      percent = next;
      setFlagsFromString(`--heap-growing-percent=${next}`);
    }
  };
  apply();
  const observer = new PerformanceObserver((list) => {
    if (list.getEntries().some(isFullCollection)) {
      apply();
    }
  });
  observer.observe({ entryTypes: ['gc'] });
}

function isFullCollection(entry: PerformanceEntry): boolean {
  return (
    (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR
  );
}
