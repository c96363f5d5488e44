import type { BenchData } from './seed.js';

/** What the sandbox process announces once seeded. */
export interface SandboxReady {
  origin: string;
  data: BenchData;
}

/** What the gateway and the REST process announce once listening. */
export interface ServerReady {
  /** `http://127.0.0.1:port` */
  origin: string;
}

/** Room messages posted for workload (d) carry their send time (epoch ms, sub-ms) in the text. */
export const STAMP_PREFIX = 'bench-stamp:';

/** Asks the sandbox process to post room messages (workload d). */
export interface TrafficRequest {
  /** Room ids with the tokens that post in them, in turn. */
  rooms: { id: string; tokens: string[] }[];
  perRoomPerSecond: number;
  durationMs: number;
}
