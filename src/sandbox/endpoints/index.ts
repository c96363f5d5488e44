import type { EndpointDef } from '../registry.js';
import { coreEndpoints } from './core.js';

/** Every endpoint the sandbox serves. A domain adds its module here, one line. */
export const allEndpoints: EndpointDef[] = [...coreEndpoints];
