import { invalid } from '@tsengine/core';

/** One Dockerfile instruction as written, continuation lines joined. */
export interface Instruction {
  /** Lower-case keyword: "from", "run", … */
  keyword: string;
  /** The instruction as docker prints it in "Step N/M : …" (keyword as written, continuations joined). */
  original: string;
  /** Leading --name=value words (COPY --from=…, RUN --network=…), unparsed. */
  flags: string[];
  /** Everything after the keyword and its flags, trimmed. */
  rest: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Dockerfile {
  escape: string;
  instructions: Instruction[];
}

const KEYWORDS = new Set([
  'add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label', 'maintainer',
  'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir',
]);

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;

/**
 * Docker's Dockerfile parser: parser directives (escape, syntax) at the very top, comments, blank
 * lines, line continuations with the escape character (comment and blank lines inside a
 * continuation are skipped), keywords case-insensitive.
 */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let index = 0;
  const seen = new Set<string>();
  for (; index < lines.length; index++) {
    const match = DIRECTIVE.exec(lines[index]!);
    if (!match) break;
    const name = match[1]!.toLowerCase();
    if (seen.has(name)) throw invalid(`dockerfile parse error on line ${index + 1}: only one ${name} parser directive can be used`);
    seen.add(name);
    if (name === 'escape') {
      if (match[2] !== '\\' && match[2] !== '`') throw invalid(`invalid escape token '${match[2]}' does not match ` + '` or \\');
      escape = match[2]!;
    }
  }
  const continuation = new RegExp(`${escapeRegExp(escape)}[ \\t]*$`);
  const instructions: Instruction[] = [];
  while (index < lines.length) {
    const startLine = index + 1;
    const first = lines[index++]!;
    if (isBlankOrComment(first)) continue;
    let text = first.replace(/^\s+/, '');
    while (continuation.test(text) && index < lines.length) {
      text = text.replace(continuation, '');
      let next = lines[index++]!;
      while (isBlankOrComment(next) && index < lines.length) next = lines[index++]!;
      if (isBlankOrComment(next)) break;
      text += next;
    }
    if (continuation.test(text)) text = text.replace(continuation, '');
    instructions.push(splitInstruction(text.trim(), startLine));
  }
  return { escape, instructions };
}

function isBlankOrComment(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === '' || trimmed.startsWith('#');
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|`]/g, '\\$&');
}

function splitInstruction(text: string, line: number): Instruction {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text)!;
  const keyword = match[1]!.toLowerCase();
  if (!KEYWORDS.has(keyword)) throw invalid(`dockerfile parse error on line ${line}: unknown instruction: ${match[1]!.toUpperCase()}`);
  let rest = match[2]!.trim();
  const flags: string[] = [];
  // Flags come first; ONBUILD's and HEALTHCHECK CMD's inner instruction keeps its own.
  if (keyword !== 'onbuild') {
    for (;;) {
      const flag = /^(--\S+)\s*/.exec(rest);
      if (!flag) break;
      if (flag[1] === '--') {
        rest = rest.slice(flag[0].length);
        break;
      }
      flags.push(flag[1]!);
      rest = rest.slice(flag[0].length);
    }
  }
  return { keyword, original: text, flags, rest: rest.trim(), line };
}

/** Flags only BuildKit understands; the legacy builder names BuildKit in its refusal. */
const BUILDKIT_FLAGS = new Set(['run mount', 'run network', 'run security', 'copy chmod', 'copy link', 'copy parents', 'copy exclude', 'add chmod', 'add link', 'add checksum', 'add keep-git-dir', 'add exclude']);

/** `--name=value` flags → a map; refuses names the instruction does not know (docker's wording). */
export function parseFlags(instruction: Instruction, allowed: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const flag of instruction.flags) {
    const m = /^--([a-zA-Z-]+)(?:=([\s\S]*))?$/.exec(flag);
    const name = m?.[1];
    if (name && !allowed.includes(name) && BUILDKIT_FLAGS.has(`${instruction.keyword} ${name}`)) {
      throw invalid(`dockerfile parse error on line ${instruction.line}: the --${name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    }
    if (!name || !allowed.includes(name)) throw invalid(`dockerfile parse error on line ${instruction.line}: Unknown flag: ${flag.replace(/^--/, '').split('=')[0]}`);
    out.set(name, m[2] ?? 'true');
  }
  return out;
}

/** The JSON (exec) form `["a","b"]`, or undefined for the shell form. */
export function jsonForm(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(rest);
    if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return parsed as string[];
  } catch {
    // Docker treats a malformed JSON array as the shell form.
  }
  return undefined;
}

/**
 * Splits on unquoted whitespace, keeping quotes and escapes in the words (docker's parseWords, used
 * for ENV/LABEL/ARG pairs before each word is expanded).
 */
export function splitWords(text: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (!inWord && /\s/.test(ch)) continue;
    inWord = true;
    if (ch === escape && i + 1 < text.length && quote !== "'") {
      word += ch + text[++i]!;
      continue;
    }
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (/\s/.test(ch)) {
      words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    word += ch;
  }
  if (inWord) words.push(word);
  return words;
}

export type VariableLookup = (name: string) => string | undefined;

/**
 * Docker's shell-word processing for Dockerfile values: quotes removed, the escape character
 * honoured, $VAR, ${VAR}, ${VAR:-word}, ${VAR-word}, ${VAR:+word}, ${VAR+word}, ${VAR:?msg}
 * expanded; unset variables become "".
 */
export function expandWord(word: string, lookup: VariableLookup, escape = '\\'): string {
  return new WordProcessor(word, lookup, escape).word('');
}

/** Expands and splits on unquoted whitespace (EXPOSE, VOLUME shell form). */
export function expandWords(text: string, lookup: VariableLookup, escape = '\\'): string[] {
  return splitWords(text, escape).map((w) => expandWord(w, lookup, escape)).filter((w) => w !== '');
}

class WordProcessor {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly lookup: VariableLookup,
    private readonly escape: string,
  ) {}

  /** Reads until `stop` (unquoted, unescaped) or the end; consumes the stop character. */
  word(stop: string): string {
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos]!;
      if (stop && ch === stop) {
        this.pos++;
        return out;
      }
      if (ch === this.escape) {
        this.pos++;
        if (this.pos < this.text.length) out += this.text[this.pos++]!;
        else out += ch;
      } else if (ch === "'") {
        const end = this.text.indexOf("'", this.pos + 1);
        if (end < 0) throw invalid(`unexpected end of statement while looking for matching single-quote`);
        out += this.text.slice(this.pos + 1, end);
        this.pos = end + 1;
      } else if (ch === '"') {
        this.pos++;
        out += this.doubleQuoted();
      } else if (ch === '$') {
        out += this.dollar();
      } else {
        out += ch;
        this.pos++;
      }
    }
    if (stop) throw invalid(`syntax error: missing '${stop}' in ${JSON.stringify(this.text)}`);
    return out;
  }

  private doubleQuoted(): string {
    let out = '';
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos]!;
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === this.escape) {
        const next = this.text[this.pos + 1];
        if (next === '"' || next === '$' || next === this.escape) {
          out += next;
          this.pos += 2;
          continue;
        }
        out += ch;
        this.pos++;
      } else if (ch === '$') out += this.dollar();
      else {
        out += ch;
        this.pos++;
      }
    }
    throw invalid('unexpected end of statement while looking for matching double-quote');
  }

  private dollar(): string {
    this.pos++; // $
    const next = this.text[this.pos];
    if (next !== '{') {
      const name = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(this.text.slice(this.pos))?.[0];
      if (!name) return '$';
      this.pos += name.length;
      return this.lookup(name) ?? '';
    }
    this.pos++; // {
    const name = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(this.text.slice(this.pos))?.[0];
    if (!name) throw invalid(`bad substitution in ${JSON.stringify(this.text)}`);
    this.pos += name.length;
    const value = this.lookup(name);
    const ch = this.text[this.pos];
    if (ch === '}') {
      this.pos++;
      return value ?? '';
    }
    let colon = false;
    if (ch === ':') {
      colon = true;
      this.pos++;
    }
    const op = this.text[this.pos];
    if (op !== '-' && op !== '+' && op !== '?') throw invalid(`unsupported modifier (${colon ? ':' : ''}${op ?? ''}) in substitution`);
    this.pos++;
    const word = this.word('}');
    const set = colon ? value !== undefined && value !== '' : value !== undefined;
    if (op === '-') return set ? value! : word;
    if (op === '+') return set ? word : '';
    if (!set) throw invalid(`${name}: ${word || 'is not allowed to be unset'}`);
    return value!;
  }
}

/**
 * KEY=VALUE pairs of ENV, LABEL and ARG, or the legacy `ENV KEY VALUE…` form (the first word is
 * the key, the rest the value). Values are expanded; keys are expanded too (docker does).
 */
export function parseNameValues(instruction: Instruction, lookup: VariableLookup, escape: string, allowBareName = false): Array<[string, string | undefined]> {
  const words = splitWords(instruction.rest, escape);
  if (words.length === 0) throw invalid(`${instruction.keyword.toUpperCase()} requires at least one argument`);
  if (!words[0]!.includes('=') && !allowBareName) {
    const name = expandWord(words[0]!, lookup, escape);
    const value = instruction.rest.slice(instruction.rest.indexOf(words[0]!) + words[0]!.length).trim();
    if (value === '') throw invalid(`${instruction.keyword.toUpperCase()} requires at least two arguments`);
    return [[name, expandWord(value, lookup, escape)]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) {
      if (allowBareName) return [expandWord(w, lookup, escape), undefined];
      throw invalid(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    }
    const name = expandWord(w.slice(0, eq), lookup, escape);
    if (name === '') throw invalid(`${instruction.keyword.toUpperCase()} names can not be blank`);
    return [name, expandWord(w.slice(eq + 1), lookup, escape)];
  });
}
