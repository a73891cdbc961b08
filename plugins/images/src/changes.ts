import { type ContainerConfig, invalid } from '@tsengine/core';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** Applies Dockerfile-style change lines (docker import/commit -c) to a container config. */
export function applyChanges(base: ContainerConfig, changes: string[]): ContainerConfig {
  const config: ContainerConfig = { ...base };
  for (const line of changes.flatMap((c) => c.split('\n')).map((l) => l.trim()).filter(Boolean)) {
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const instruction = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (!ALLOWED.has(instruction)) throw invalid(`${m[1]} is not a valid change command`);
    switch (instruction) {
      case 'CMD':
        config.Cmd = commandForm(rest);
        break;
      case 'ENTRYPOINT':
        config.Entrypoint = commandForm(rest);
        break;
      case 'ENV':
        for (const [k, v] of keyValues(rest, 'ENV')) config.Env = [...(config.Env ?? []).filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
        break;
      case 'LABEL':
        for (const [k, v] of keyValues(rest, 'LABEL')) config.Labels = { ...(config.Labels ?? {}), [k]: v };
        break;
      case 'EXPOSE':
        for (const port of words(rest)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(port)) throw invalid(`invalid containerPort: ${port}`);
          config.ExposedPorts = { ...(config.ExposedPorts ?? {}), [port.includes('/') ? port.toLowerCase() : `${port}/tcp`]: {} };
        }
        break;
      case 'VOLUME': {
        const paths = rest.startsWith('[') ? jsonArray(rest, 'VOLUME') : words(rest);
        for (const p of paths) config.Volumes = { ...(config.Volumes ?? {}), [p]: {} };
        break;
      }
      case 'USER':
        config.User = rest;
        break;
      case 'WORKDIR':
        config.WorkingDir = rest.startsWith('/') ? rest : `/${rest}`;
        break;
      case 'STOPSIGNAL':
        config.StopSignal = rest;
        break;
      case 'ONBUILD':
        config.OnBuild = [...(config.OnBuild ?? []), rest];
        break;
    }
  }
  return config;
}

function commandForm(rest: string): string[] {
  if (rest.startsWith('[')) {
    try {
      return jsonArray(rest, 'CMD');
    } catch {
      // Docker falls back to the shell form when the JSON does not parse.
    }
  }
  return ['/bin/sh', '-c', rest];
}

function jsonArray(rest: string, what: string): string[] {
  const value = JSON.parse(rest) as unknown;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw invalid(`${what} requires a JSON array of strings`);
  return value;
}

function words(rest: string): string[] {
  return rest.split(/\s+/).filter(Boolean);
}

/** `k=v k2="v 2"` or the legacy single pair `k v`. */
function keyValues(rest: string, what: string): Array<[string, string]> {
  const tokens = tokenize(rest);
  if (tokens.length === 0) throw invalid(`${what} requires at least one argument`);
  if (!tokens[0]!.includes('=')) {
    const sp = /^(\S+)\s+([\s\S]*)$/.exec(rest);
    if (!sp) throw invalid(`${what} must have two arguments`);
    return [[sp[1]!, unquote(sp[2]!.trim())]];
  }
  return tokens.map((t) => {
    const eq = t.indexOf('=');
    if (eq <= 0) throw invalid(`Syntax error - can't find = in "${t}". Must be of the form: name=value`);
    return [t.slice(0, eq), unquote(t.slice(eq + 1))];
  });
}

function tokenize(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === '\\' && i + 1 < s.length) cur += ch + s[++i];
      else {
        if (ch === quote) quote = null;
        cur += ch;
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur += ch;
    } else if (/\s/.test(ch)) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

function unquote(v: string): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < v.length; i++) {
    const ch = v[i]!;
    if (quote) {
      if (ch === '\\' && quote === '"' && i + 1 < v.length) out += v[++i];
      else if (ch === quote) quote = null;
      else out += ch;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '\\' && i + 1 < v.length) out += v[++i];
    else out += ch;
  }
  return out;
}
