import { randomUUID } from 'node:crypto';
import { ApiError, apiError } from '../errors.js';
import type { UploadedFile } from '../registry.js';
import type { DriveFileRow, Store, UserRow } from '../store.js';
import { type FileInfo, getFileInfo } from './file-info.js';
import { correctFilename } from './filename.js';

/**
 * `drive/files/create` as Misskey's endpoints/drive/files/create.ts and core/DriveService.ts
 * `addFile` run it: the name check, the content-derived file info, the per-user md5 dedup (unless
 * `force`), then for non-moderators the role policies `uploadableFileTypes`, `maxFileSizeMb` and
 * `driveCapacityMb`, in that order.
 */
export type UploadParams = {
  name?: string | null;
  comment?: string | null;
  isSensitive?: boolean;
  force?: boolean;
};

export async function addDriveFile(
  store: Store,
  owner: UserRow,
  upload: UploadedFile,
  params: UploadParams,
): Promise<DriveFileRow> {
  const name = requestedName(params.name ?? upload.filename ?? null);
  const info = await getFileInfo(upload.bytes);
  if (!params.force) {
    const same = [...store.driveFiles.values()].find(
      (f) => f.userId === owner.id && f.md5 === info.md5,
    );
    if (same) {
      return same;
    }
  }
  const policies = store.policiesOf(owner);
  if (!store.isModerator(owner)) {
    checkPolicies(store, owner, info, policies);
  }
  const file: DriveFileRow = {
    id: store.ids.gen(),
    userId: owner.id,
    name: correctFilename(name ?? 'untitled', info.type.ext),
    type: info.type.mime,
    md5: info.md5,
    size: info.size,
    comment: params.comment ?? null,
    isSensitive: policies.alwaysMarkNsfw || (params.isSensitive ?? false),
    properties: propertiesOf(info),
    blurhash: info.blurhash ?? null,
    accessKey: randomUUID(),
  };
  store.driveFiles.set(file.id, file);
  return file;
}

/** The endpoint's name rule: trimmed, empty or `blob` means none, a bad one is an error. */
function requestedName(raw: string | null): string | null {
  const name = raw?.trim() ?? null;
  if (name === null || name === '' || name === 'blob') {
    return null;
  }
  if (name.length > 200 || name.includes('\\') || name.includes('/') || name.includes('..')) {
    throw apiError(
      'INVALID_FILE_NAME',
      'f449b209-0c60-4e51-84d5-29486263bfd4',
      'Invalid file name.',
    );
  }
  return name;
}

function checkPolicies(
  store: Store,
  owner: UserRow,
  info: FileInfo,
  policies: ReturnType<Store['policiesOf']>,
): void {
  if (!policies.uploadableFileTypes.some((pattern) => mimeMatches(pattern, info.type.mime))) {
    throw apiError(
      'UNALLOWED_FILE_TYPE',
      '4becd248-7f2c-48c4-a9f0-75edc4f9a1ea',
      'Cannot upload the file because it is an unallowed file type.',
    );
  }
  if (info.size > policies.maxFileSizeMb * 1024 * 1024) {
    throw new ApiError(
      'MAX_FILE_SIZE_EXCEEDED',
      'b9d8c348-33f0-4673-b9a9-5d4da058977a',
      'Cannot upload the file because it exceeds the maximum file size.',
      'client',
      413,
    );
  }
  let usage = 0;
  for (const file of store.driveFiles.values()) {
    usage += file.userId === owner.id ? file.size : 0;
  }
  if (usage + info.size > policies.driveCapacityMb * 1024 * 1024) {
    throw apiError(
      'NO_FREE_SPACE',
      'd08dbc37-a6a9-463a-8c47-96c32ab5f064',
      'Cannot upload the file because you have no free space of drive.',
    );
  }
}

/** `*` and `*\/*` allow all, `type/*` a whole type, anything else one exact type. */
function mimeMatches(pattern: string, mime: string): boolean {
  if (pattern === '*' || pattern === '*/*') {
    return true;
  }
  return pattern.endsWith('/*') ? mime.startsWith(pattern.slice(0, -1)) : mime === pattern;
}

function propertiesOf(info: FileInfo): DriveFileRow['properties'] {
  const properties: DriveFileRow['properties'] = {};
  if (info.width) {
    properties.width = info.width;
    properties.height = info.height;
  }
  if (info.orientation !== undefined) {
    properties.orientation = info.orientation;
  }
  return properties;
}
