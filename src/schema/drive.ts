import type { GraphQLError } from 'graphql';
import type { DriveFile as DriveFileEntity } from '../upstream/entities.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { ErrorCode, fromUpstream, gatewayError } from './errors.js';
import { assertId } from './ids.js';
import type { Upload } from './uploads.js';

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

const MIB = 1024 * 1024;

function fileTooLarge(limit: number): GraphQLError {
  return gatewayError(ErrorCode.FILE_TOO_LARGE, `The file is over ${limit} bytes.`, {
    maxBytes: limit,
  });
}

/**
 * Streams `upload` to `drive/files/create` and returns the stored file. Refused before any
 * upstream call: a file over the caller's `maxFileSizeMb` (moderators have none, as in Misskey)
 * or `MAX_UPLOAD_BYTES` when the request's length already says so (FILE_TOO_LARGE), and an empty
 * one (FILE_EMPTY). A file found too large while it streams, or a client that goes away, aborts
 * the upstream request.
 */
export async function uploadToDrive(
  ctx: Context,
  upload: Upload,
  params: { name?: string | null; folderId?: string | null; isSensitive?: boolean | null },
): Promise<DriveFileEntity> {
  try {
    const me = await ctx.viewer();
    const byPolicy =
      me.isModerator || me.isAdmin ? Number.POSITIVE_INFINITY : me.policies.maxFileSizeMb * MIB;
    const limit = Math.min(byPolicy, upload.maxBytes);
    if (upload.sizeAtLeast > limit) {
      throw fileTooLarge(limit);
    }
    const chunks = upload.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      first = await chunks.next();
    } catch (error) {
      // Cut at MAX_UPLOAD_BYTES, or the client went away (then nobody reads the answer).
      throw upload.stream.truncated ? fileTooLarge(limit) : error;
    }
    if (first.done) {
      throw gatewayError(ErrorCode.FILE_EMPTY, 'The file is empty.');
    }
    let size = 0;
    let over = false;
    const body = async function* (): AsyncGenerator<Uint8Array> {
      let next: IteratorResult<Buffer> = first;
      while (!next.done) {
        size += next.value.length;
        if (size > limit) {
          over = true;
          throw new Error('file too large');
        }
        yield next.value;
        next = await chunks.next();
      }
      if (upload.stream.truncated) {
        over = true;
        throw new Error('file too large');
      }
    };
    const fields: Record<string, string> = {};
    if (params.name != null) {
      fields.name = params.name;
    }
    if (params.folderId != null) {
      fields.folderId = assertId(params.folderId, 'folderId');
    }
    if (params.isSensitive != null) {
      fields.isSensitive = String(params.isSensitive);
    }
    try {
      return await ctx.client.upload(
        'drive/files/create',
        fields,
        { name: upload.name, type: upload.type, body: body() },
        ctx.token,
        { ...ctx.callOptions(ctx.token), signal: upload.signal },
      );
    } catch (error) {
      if (over || upload.stream.truncated) {
        throw fileTooLarge(limit);
      }
      throw fromUpstream(error);
    }
  } finally {
    upload.discard();
  }
}

builder.mutationFields((t) => ({
  uploadDriveFile: t.field({
    type: DriveFile,
    description:
      'Uploads a file to your drive (`drive/files/create`), sent as a multipart request (GraphQL ' +
      'multipart request spec) and streamed to Misskey as it arrives. Misskey detects the type ' +
      'and checks its role policies (allowed types, size, drive capacity).',
    authScopes: { authenticated: true },
    args: {
      file: t.arg({ type: 'File', required: true }),
      name: t.arg.string({ description: 'The name to store; default: the uploaded file name.' }),
      folderId: t.arg.id({ description: 'The drive folder; default: the root.' }),
      isSensitive: t.arg.boolean({ description: 'Mark it NSFW.' }),
    },
    resolve: (_root, args, ctx) =>
      uploadToDrive(ctx, args.file, {
        name: args.name,
        folderId: args.folderId == null ? null : String(args.folderId),
        isSensitive: args.isSensitive,
      }),
  }),
}));
