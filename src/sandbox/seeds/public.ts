import type { DemoSeeder } from '../seed.js';

/** Demo data of this domain, built through the sandbox's endpoints. */
export const seedPublic: DemoSeeder = async () => {};
