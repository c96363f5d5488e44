import type { DriveFile as DriveFileEntity } from '../upstream/entities.js';
import { builder } from './builder.js';

/**
 * A drive file as Misskey embeds it in chat messages (`DriveFile` packed without detail). Read it
 * from the message: `drive/files/show` refuses files of other users, so a chat recipient could
 * not fetch it (API.md §5.16).
 */
export const DriveFile = builder.objectRef<DriveFileEntity>('DriveFile');

DriveFile.implement({
  description: 'A file in a Misskey drive (as embedded in the object that references it).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey drive file id.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (file) => file.createdAt }),
    name: t.exposeString('name', { description: 'The file name, e.g. "photo.png".' }),
    type: t.exposeString('type', { description: 'MIME type, e.g. "image/png".' }),
    md5: t.exposeString('md5'),
    size: t.exposeInt('size', { description: 'Size in bytes.' }),
    isSensitive: t.exposeBoolean('isSensitive', { description: 'Marked NSFW.' }),
    blurhash: t.exposeString('blurhash', { nullable: true }),
    url: t.exposeString('url'),
    thumbnailUrl: t.exposeString('thumbnailUrl', {
      nullable: true,
      description: 'Null when Misskey made no thumbnail (e.g. for non-images).',
    }),
    comment: t.exposeString('comment', {
      nullable: true,
      description: 'Alt text / caption set by the owner.',
    }),
    width: t.int({
      nullable: true,
      description: 'Pixel width of an image or video (`properties.width`), when known.',
      resolve: (file) => file.properties?.width ?? null,
    }),
    height: t.int({
      nullable: true,
      description: 'Pixel height of an image or video (`properties.height`), when known.',
      resolve: (file) => file.properties?.height ?? null,
    }),
  }),
});
