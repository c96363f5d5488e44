import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { encode } from 'blurhash';
import { fileTypeFromBuffer } from 'file-type';
import probeImageSize from 'probe-image-size';

/**
 * What Misskey's core/FileInfoService.ts `getFileInfo` learns from an upload's bytes: the type
 * comes from the content (magic bytes through `file-type`), never from the client's part header;
 * dimensions are read from the image header (`probe-image-size`, like Misskey, so a truncated
 * image still has a size), and the blurhash is computed exactly as Misskey does.
 */
export interface FileInfo {
  size: number;
  md5: string;
  type: { mime: string; ext: string | null };
  width?: number;
  height?: number;
  orientation?: number;
  blurhash?: string;
}

const OCTET_STREAM = { mime: 'application/octet-stream', ext: null };
const SVG = { mime: 'image/svg+xml', ext: 'svg' };

/** Types whose dimensions Misskey probes; one it cannot measure becomes octet-stream. */
const MEASURED = new Set([
  'image/png',
  'image/gif',
  'image/jpeg',
  'image/webp',
  'image/avif',
  'image/apng',
  'image/bmp',
  'image/tiff',
  'image/svg+xml',
  'image/vnd.adobe.photoshop',
]);

/** Types Misskey computes a blurhash for. */
const BLURHASHED = new Set([
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'image/svg+xml',
]);

/** Misskey's dimension limit: larger images are stored as octet-stream. */
const MAX_DIMENSION = 16383;

export async function getFileInfo(bytes: Buffer): Promise<FileInfo> {
  const info: FileInfo = {
    size: bytes.length,
    md5: createHash('md5').update(bytes).digest('hex'),
    type: await detectType(bytes),
  };
  if (MEASURED.has(info.type.mime)) {
    measure(info, bytes);
  }
  if (BLURHASHED.has(info.type.mime)) {
    info.blurhash = await blurhashOf(bytes).catch(() => undefined);
  }
  return info;
}

/** Dimensions in pixels; an image whose header cannot be read, or one beyond Misskey's limit, is
 *  stored as octet-stream (other units leave it untouched and unmeasured). */
function measure(info: FileInfo, bytes: Buffer): void {
  let size: ReturnType<typeof probeImageSize.sync> = null;
  try {
    size = probeImageSize.sync(bytes);
  } catch {
    size = null;
  }
  if (!size) {
    info.type = OCTET_STREAM;
    return;
  }
  if (size.wUnits !== 'px') {
    return;
  }
  info.width = size.width;
  info.height = size.height;
  if (size.orientation !== undefined) {
    info.orientation = size.orientation;
  }
  if (size.width > MAX_DIMENSION || size.height > MAX_DIMENSION) {
    info.type = OCTET_STREAM;
  }
}

/** FileInfoService.detectType: empty → octet-stream; XML or unknown content may be SVG. */
export async function detectType(bytes: Buffer): Promise<{ mime: string; ext: string | null }> {
  if (bytes.length === 0) {
    return OCTET_STREAM;
  }
  const type = await fileTypeFromBuffer(bytes);
  if (type) {
    if (type.mime === 'application/xml' && isSvg(bytes)) {
      return SVG;
    }
    return { mime: fixMime(type.mime), ext: type.ext };
  }
  if (isSvg(bytes)) {
    return SVG;
  }
  // Recorded: a UTF-8 text file is stored as text/plain (scenarios/a.json, hello.txt), which
  // magic bytes cannot tell; anything else unknown is octet-stream.
  if (isUtf8(bytes) && !bytes.includes(0)) {
    return { mime: 'text/plain', ext: null };
  }
  return OCTET_STREAM;
}

/** The aliases FileInfoService.fixMime normalises. */
function fixMime(mime: string): string {
  if (mime === 'audio/x-flac') {
    return 'audio/flac';
  }
  if (mime === 'audio/vnd.wave') {
    return 'audio/wav';
  }
  return mime;
}

/** `is-svg`'s rule, enough for uploads: text up to 1 MiB whose root element is `<svg`. */
function isSvg(bytes: Buffer): boolean {
  if (bytes.length > 1024 * 1024 || !isUtf8(bytes)) {
    return false;
  }
  const text = bytes
    .toString('utf8')
    .replace(/<\?xml[\s\S]*?\?>/g, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<!DOCTYPE[^>]*>/gi, '')
    .trimStart();
  return /^<svg[\s>]/i.test(text);
}

/** FileInfoService.getBlurhash: RGBA resized into 64×64 (`fit: inside`), 5×5 components. */
async function blurhashOf(bytes: Buffer): Promise<string> {
  // Loaded on the first image: sharp's native library is large, and most processes never need it.
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(bytes)
    .raw()
    .ensureAlpha()
    .resize(64, 64, { fit: 'inside' })
    .toBuffer({ resolveWithObject: true });
  return encode(new Uint8ClampedArray(data), info.width, info.height, 5, 5);
}
