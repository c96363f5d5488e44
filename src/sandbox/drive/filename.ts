/** Archive extensions Misskey never appends to (misskey-dev/misskey#11482). */
const KEEP_ARCHIVES = new Set(['.gz', '.tar', '.tgz', '.bz2', '.xz', '.zip', '.7z']);

const EXTENSION = /\.[0-9a-zA-Z]+$/i;

/**
 * Misskey's misc/correct-filename.ts: the stored name gets the detected extension unless it
 * already has it (or a synonym); a name without extension of an unknown type gets `.unknown`.
 */
export function correctFilename(filename: string, ext: string | null): string {
  const dotExt = ext ? (ext.startsWith('.') ? ext : `.${ext}`) : '.unknown';
  const match = EXTENSION.exec(filename);
  if (!match) {
    return `${filename}${dotExt}`;
  }
  const current = match[0].toLowerCase();
  if (
    ext === null ||
    current === dotExt ||
    (dotExt === '.jpg' && current === '.jpeg') ||
    (dotExt === '.tif' && current === '.tiff') ||
    (dotExt === '.exe' && current === '.dll') ||
    KEEP_ARCHIVES.has(dotExt)
  ) {
    return filename;
  }
  return `${filename}${dotExt}`;
}
