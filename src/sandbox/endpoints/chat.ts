import { chatMessageEndpoints } from '../chat/messages.js';
import { chatRoomEndpoints } from '../chat/rooms.js';
import type { EndpointDef } from '../registry.js';

export { markChatRead, markNotificationsRead, setupChat } from '../chat/state.js';

/** Misskey's chat: history and read state, messages, rooms and invitations (API.md §1.2–1.5). */
export const chatEndpoints: EndpointDef[] = [...chatMessageEndpoints, ...chatRoomEndpoints];
