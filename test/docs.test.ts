import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { buildSchema, type GraphQLError, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';

/**
 * The documentation cannot rot: every relative link of README.md and docs/ points at a file that
 * exists (and at a heading that exists, for `#anchors` into Markdown), every ```graphql block is a
 * valid operation of the committed schema, and the README stays a front door. A block that is
 * meant to be partial is fenced as ```graphql-partial and skipped.
 */

const ROOT = resolve(import.meta.dirname, '..');
const README_MAX_LINES = 250;

/** README.md and every Markdown file under docs/, as paths relative to the repository. */
function documentationFiles(): string[] {
  const files = ['README.md'];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(ROOT, dir)).sort()) {
      const path = join(dir, name);
      if (statSync(join(ROOT, path)).isDirectory()) {
        walk(path);
      } else if (name.endsWith('.md')) {
        files.push(path);
      }
    }
  };
  walk('docs');
  return files;
}

interface Fence {
  /** The info string's first word (`graphql`, `sh`, …; empty when none). */
  lang: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

interface Markdown {
  /** The text with every fenced block and inline code span blanked (same length, same lines). */
  prose: string;
  fences: Fence[];
}

/** Splits fenced code blocks from the prose, keeping offsets and line numbers intact. */
function readMarkdown(text: string): Markdown {
  const lines = text.split('\n');
  const fences: Fence[] = [];
  let open: { marker: string; lang: string; line: number; body: string[] } | null = null;
  const prose = lines.map((line, index) => {
    const fence = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (open) {
      if (fence?.[2]?.startsWith(open.marker) && line.trim() === fence[2]) {
        fences.push({ lang: open.lang, body: open.body.join('\n'), line: open.line });
        open = null;
      } else {
        open.body.push(line);
      }
      return ' '.repeat(line.length);
    }
    if (fence?.[2]) {
      open = { marker: fence[2], lang: fence[3] ?? '', line: index + 1, body: [] };
      return ' '.repeat(line.length);
    }
    return line;
  });
  if (open !== null) {
    throw new Error(`unclosed code fence opened on line ${(open as { line: number }).line}`);
  }
  // Inline code spans may hold anything that looks like a link or a heading: blank them too.
  const blanked = prose
    .join('\n')
    .replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, ' '));
  return { prose: blanked, fences };
}

/** The anchor GitHub gives a heading (github-slugger): lower case, punctuation and symbols
 *  dropped, spaces to hyphens; repeated headings get -1, -2, … */
function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The text GitHub renders for a heading's Markdown: code spans, links and emphasis unwrapped. */
function headingText(markdown: string): string {
  return markdown
    .replace(/\s+#+\s*$/, '')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/(\*\*|__|\*)(.+?)\1/g, '$2')
    .replace(/(^|[^\p{L}\p{N}])_(.+?)_(?=[^\p{L}\p{N}]|$)/gu, '$1$2')
    .trim();
}

const anchorCache = new Map<string, Set<string>>();

/** Every anchor of a Markdown file's headings (outside code blocks). */
function anchorsOf(file: string): Set<string> {
  const cached = anchorCache.get(file);
  if (cached) {
    return cached;
  }
  const { prose } = readMarkdown(readFileSync(file, 'utf8'));
  const original = readFileSync(file, 'utf8').split('\n');
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  prose.split('\n').forEach((line, index) => {
    if (!/^ {0,3}#{1,6}\s/.test(line)) {
      return;
    }
    // The blanked line tells where headings are; the original line keeps their code spans.
    const text = headingText((original[index] ?? '').replace(/^ {0,3}#{1,6}\s+/, ''));
    const base = slug(text);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  });
  anchorCache.set(file, anchors);
  return anchors;
}

interface Link {
  target: string;
  line: number;
}

/** Inline links and images, and reference definitions, of the prose (not of code). */
function linksOf(prose: string): Link[] {
  const links: Link[] = [];
  const lineAt = (offset: number) => prose.slice(0, offset).split('\n').length;
  const inline = /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
  for (const match of prose.matchAll(inline)) {
    links.push({ target: match[1] ?? '', line: lineAt(match.index ?? 0) });
  }
  const definition = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm;
  for (const match of prose.matchAll(definition)) {
    links.push({ target: match[1] ?? '', line: lineAt(match.index ?? 0) });
  }
  return links;
}

/** Why a relative link is broken, or null when it resolves. */
function brokenLink(from: string, target: string): string | null {
  const hash = target.indexOf('#');
  const path = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
  const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
  const file = path === '' ? join(ROOT, from) : resolve(dirname(join(ROOT, from)), path);
  if (relative(ROOT, file).startsWith('..')) {
    return 'points outside the repository';
  }
  if (!existsSync(file)) {
    return `${relative(ROOT, file)} does not exist`;
  }
  if (anchor !== null && file.endsWith('.md')) {
    if (!anchorsOf(file).has(anchor)) {
      return `${relative(ROOT, file)} has no heading with the anchor #${anchor}`;
    }
  }
  return null;
}

const files = documentationFiles();
const schema = buildSchema(readFileSync(join(ROOT, 'schema.graphql'), 'utf8'));

describe('documentation', () => {
  it('has README.md and the pages under docs/', () => {
    expect(files).toContain('README.md');
    expect(files.filter((file) => file.startsWith('docs')).length).toBeGreaterThan(5);
  });

  it(`keeps README.md at most ${README_MAX_LINES} lines (the reference lives in docs/)`, () => {
    const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\n$/, '').split('\n');
    expect(lines.length).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it('links every page under docs/ from README.md', () => {
    const linked = new Set(
      linksOf(readMarkdown(readFileSync(join(ROOT, 'README.md'), 'utf8')).prose)
        .filter((link) => !/^[a-z][a-z+.-]*:/i.test(link.target))
        .map((link) => relative(ROOT, resolve(ROOT, link.target.split('#')[0] ?? ''))),
    );
    const pages = files.filter((file) => file.startsWith('docs'));
    expect(pages.filter((page) => !linked.has(page))).toEqual([]);
  });

  describe.each(files)('%s', (file) => {
    const { prose } = readMarkdown(readFileSync(join(ROOT, file), 'utf8'));

    it('has only relative links that resolve, anchors included', () => {
      const broken = linksOf(prose)
        .filter((link) => !/^[a-z][a-z+.-]*:/i.test(link.target) && !link.target.startsWith('//'))
        .map((link) => {
          const why = brokenLink(file, link.target);
          return why === null ? null : `${file}:${link.line}: ${link.target}: ${why}`;
        })
        .filter((problem) => problem !== null);
      expect(broken).toEqual([]);
    });
  });
});

/** Every ```graphql block of the documentation, with where it is. */
const graphqlBlocks = files.flatMap((file) =>
  readMarkdown(readFileSync(join(ROOT, file), 'utf8'))
    .fences.filter((fence) => fence.lang === 'graphql')
    .map((fence) => ({ where: `${file}:${fence.line}`, file, fence })),
);

describe('```graphql blocks of the documentation', () => {
  it('exist (a page that loses them all should mean it)', () => {
    expect(graphqlBlocks.length).toBeGreaterThanOrEqual(5);
  });

  it.each(graphqlBlocks)(
    '$where parses and validates against schema.graphql',
    ({ file, fence }) => {
      let errors: readonly GraphQLError[];
      try {
        errors = validate(schema, parse(fence.body));
      } catch (error) {
        errors = [error as GraphQLError];
      }
      const problems = errors.map((error) => {
        const at = error.locations?.[0];
        return `${file}:${at ? fence.line + at.line : fence.line}: ${error.message}`;
      });
      expect(problems).toEqual([]);
    },
  );
});

describe('the documentation checks themselves', () => {
  it('slug headings as GitHub does', () => {
    expect(slug(headingText('Rooms, owners and members'))).toBe('rooms-owners-and-members');
    expect(slug(headingText('graphql-ws (websocket, protocol `graphql-transport-ws`)'))).toBe(
      'graphql-ws-websocket-protocol-graphql-transport-ws',
    );
    expect(slug(headingText("The sandbox's `/streaming`"))).toBe('the-sandboxs-streaming');
    expect(slug(headingText('docker compose: two replicas, Redis, nginx'))).toBe(
      'docker-compose-two-replicas-redis-nginx',
    );
    expect(slug(headingText('CORS (`CORS_ORIGINS`)'))).toBe('cors-cors_origins');
    expect(slug(headingText('1. Start it'))).toBe('1-start-it');
  });

  it('find links, not what code blocks and code spans hold', () => {
    const { prose, fences } = readMarkdown(
      [
        'See [a](a.md#x) and `[b](b.md)`.',
        '```graphql',
        '# [c](c.md)',
        '{ me { id } }',
        '```',
        '[d]: d.md',
        'a [link over',
        'two lines](e.md)',
      ].join('\n'),
    );
    expect(linksOf(prose)).toEqual([
      { target: 'a.md#x', line: 1 },
      { target: 'e.md', line: 7 },
      { target: 'd.md', line: 6 },
    ]);
    expect(fences).toEqual([{ lang: 'graphql', body: '# [c](c.md)\n{ me { id } }', line: 2 }]);
  });

  it('report a broken link, a missing anchor and an invalid graphql block', () => {
    expect(brokenLink('README.md', 'docs/no-such-page.md')).toMatch(/does not exist/);
    expect(brokenLink('README.md', '#no-such-heading')).toMatch(/no heading/);
    expect(brokenLink('README.md', '#quick-start')).toBeNull();
    expect(validate(schema, parse('{ me { noSuchField } }')).length).toBeGreaterThan(0);
  });
});
