import type { EndpointDef } from '../registry.js';
import type { Store } from '../store.js';
import { announcementsEndpoints, setupAnnouncements } from './announcements.js';
import { chatEndpoints, setupChat } from './chat.js';
import { coreEndpoints } from './core.js';
import { hashtagsEndpoints, setupHashtags } from './hashtags.js';
import { invitesEndpoints } from './invites.js';
import { pushEndpoints } from './push.js';

/** Every endpoint the sandbox serves, one module per domain. */
export const allEndpoints: EndpointDef[] = [
  ...coreEndpoints,
  ...chatEndpoints,
  ...announcementsEndpoints,
  ...hashtagsEndpoints,
  ...invitesEndpoints,
  ...pushEndpoints,
];

/** Run once on a new store, before any call: domains install hooks (e.g. what `i` reports as
 *  unread). A domain adds its function here, one line. */
export const domainSetups: ((store: Store) => void)[] = [
  setupChat,
  setupAnnouncements,
  setupHashtags,
];
