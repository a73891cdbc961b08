import { lstat, readdir, rm, rmdir } from 'node:fs/promises';
import { join, posix } from 'node:path';

interface Pattern {
  exclusion: boolean;
  regexp: RegExp;
  text: string;
}

/**
 * .dockerignore as docker reads it: one pattern per line, `#` comments, `!` re-includes, patterns
 * cleaned and made relative ("/a/../b" → "b"), Go filepath.Match syntax plus `**` for any number
 * of directories. A path is ignored when the last pattern matching it or one of its parents is not
 * an exception.
 */
export class IgnoreMatcher {
  private readonly patterns: Pattern[];

  constructor(text: string) {
    this.patterns = [];
    for (const raw of text.split(/\r?\n/)) {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let exclusion = false;
      if (line.startsWith('!')) {
        exclusion = true;
        line = line.slice(1).trim();
      }
      let cleaned = posix.normalize(line).replace(/^\/+/, '').replace(/\/+$/, '');
      if (cleaned === '.' || cleaned === '') cleaned = '.';
      this.patterns.push({ exclusion, regexp: toRegExp(cleaned), text: cleaned });
    }
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  get hasExceptions(): boolean {
    return this.patterns.some((p) => p.exclusion);
  }

  /** True when `path` (relative, "/"-separated) is excluded from the context. */
  ignores(path: string): boolean {
    const parents = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const pattern of this.patterns) {
      const matched = pattern.regexp.test(path) || parents.slice(0, -1).some((p) => pattern.regexp.test(p));
      if (matched) ignored = !pattern.exclusion;
    }
    return ignored;
  }
}

function toRegExp(pattern: string): RegExp {
  let out = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
        out += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (ch === '\\' && i + 1 < pattern.length) {
      out += escapeChar(pattern[++i]!);
    } else out += escapeChar(ch);
  }
  return new RegExp(out + '$');
}

function escapeChar(ch: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(ch) ? `\\${ch}` : ch;
}

/**
 * Removes everything the matcher ignores from an extracted context, except the Dockerfile and
 * .dockerignore, which docker keeps unless they are listed themselves (then it keeps them only for
 * reading). Directories are descended only when an exception could re-include something in them.
 */
export async function pruneContext(root: string, matcher: IgnoreMatcher, keep: string[] = []): Promise<void> {
  if (matcher.empty) return;
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const childRel = rel ? `${rel}/${name}` : name;
      const path = join(dir, name);
      if (keep.includes(childRel)) continue;
      const ignored = matcher.ignores(childRel);
      const st = await lstat(path);
      if (st.isDirectory() && (!ignored || matcher.hasExceptions)) {
        await walk(path, childRel);
        if (ignored) await rmdir(path).catch(() => undefined);
      } else if (ignored) await rm(path, { recursive: true, force: true });
    }
  };
  await walk(root, '');
}
