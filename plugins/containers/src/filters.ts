import { type ContainerListFilters, type ContainerSummary, invalid } from '@tsengine/core';
import type { ContainerRecord } from './manager.js';

/** The filters this engine applies; others are refused rather than silently ignored. */
const KNOWN = new Set(['status', 'name', 'label', 'label!', 'id', 'ancestor', 'exited', 'until', 'before', 'since', 'health', 'is-task', 'network', 'volume', 'publish', 'expose']);
/** Filters on what `docker ps` shows of a container (networks, mounts, ports): they need its summary. */
const ON_SUMMARY = ['network', 'volume', 'publish', 'expose'];
const STATUSES = new Set(['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead']);
const HEALTHS = ['none', 'starting', 'healthy', 'unhealthy'];

/**
 * Docker's container filters: any value of one key may match, every key must. `summary` gives what
 * `docker ps` shows of a container (its networks, mounts and ports); without it the filters on
 * those are refused.
 */
export async function listFilterOf(
  filters: ContainerListFilters,
  resolveImage: (ref: string) => Promise<string | undefined>,
  container: (ref: string) => ContainerRecord,
  summary?: (record: ContainerRecord) => ContainerSummary,
): Promise<(record: ContainerRecord) => boolean> {
  for (const key of Object.keys(filters)) {
    if (!KNOWN.has(key) || (!summary && ON_SUMMARY.includes(key))) throw invalid(`invalid filter '${key}'`);
  }
  for (const health of filters.health ?? []) {
    if (!HEALTHS.includes(health)) throw invalid(`invalid filter 'health=${health}': invalid value for health (${health}): must be one of ${HEALTHS.join(', ')}`);
  }
  const isTask = filters['is-task'] ? taskFilterOf(filters['is-task']) : undefined;
  const published = portSetOf('publish', filters.publish ?? []);
  const exposed = portSetOf('expose', filters.expose ?? []);
  for (const status of filters.status ?? []) {
    if (!STATUSES.has(status)) throw invalid(`invalid filter 'status=${status}'`);
  }
  const exited = (filters.exited ?? []).map((v) => {
    if (!/^-?\d+$/.test(v)) throw invalid(`invalid filter 'exited=${v}'`);
    return Number(v);
  });
  const names = (filters.name ?? []).map((v) => {
    try {
      return new RegExp(v);
    } catch {
      throw invalid(`invalid filter 'name=${v}'`);
    }
  });
  const ancestors = await Promise.all((filters.ancestor ?? []).map(async (ref) => ({ ref, id: await resolveImage(ref) })));
  const until = (filters.until ?? []).map((v) => untilTime(v));
  // Created strictly before / after the named containers.
  const before = (filters.before ?? []).map((ref) => container(ref).Created);
  const since = (filters.since ?? []).map((ref) => container(ref).Created);
  return (record) => {
    const state = record.State;
    if (filters.status?.length && !filters.status.includes(state.Status)) return false;
    if (exited.length && (state.Status !== 'exited' || !exited.includes(state.ExitCode))) return false;
    if (names.length && !names.some((re) => re.test(record.Name) || re.test(record.Name.slice(1)))) return false;
    if (filters.id?.length && !filters.id.some((p) => record.Id.startsWith(p))) return false;
    const labels = record.Config.Labels ?? {};
    if (filters.label?.length && !filters.label.every((l) => labelMatches(labels, l))) return false;
    if (filters['label!']?.length && filters['label!'].some((l) => labelMatches(labels, l))) return false;
    if (ancestors.length && !ancestors.some((a) => a.ref === record.Config.Image || a.id === record.Image || (a.ref.length >= 4 && record.Image.replace(/^sha256:/, '').startsWith(a.ref.replace(/^sha256:/, ''))))) return false;
    if (until.length && !until.every((t) => Date.parse(record.Created) <= t)) return false;
    if (before.length && !before.every((created) => record.Created < created)) return false;
    if (since.length && !since.every((created) => record.Created > created)) return false;
    // No container here runs a healthcheck (Docker's "none") or is a swarm task.
    if (filters.health?.length && !filters.health.includes('none')) return false;
    if (isTask === true) return false;
    if (!summary || !ON_SUMMARY.some((key) => filters[key]?.length)) return true;
    const view = summary(record);
    if (filters.network?.length && !filters.network.some((value) => onNetwork(view, value))) return false;
    if (filters.volume?.length && !filters.volume.some((value) => hasMount(view, value))) return false;
    if (published.size || exposed.size) {
      const ports = view.Ports.map((p) => ({ published: `${p.PublicPort ?? 0}/${p.Type}`, exposed: `${p.PrivatePort}/${p.Type}` }));
      if (!ports.some((p) => published.has(p.published) || exposed.has(p.exposed))) return false;
    }
    return true;
  };
}

/** `network=`: a network the container is on, by name or by a prefix of its ID. */
function onNetwork(view: ContainerSummary, value: string): boolean {
  const networks = view.NetworkSettings.Networks;
  if (Object.hasOwn(networks, value)) return true;
  return Object.values(networks).some((n) => (n.NetworkID ?? '').startsWith(value));
}

/** `volume=`: a mount by its destination, by its volume name, or by its source when it has no name (binds). */
function hasMount(view: ContainerSummary, value: string): boolean {
  return view.Mounts.some((m) => m.Destination === value || (m.Name ? m.Name === value : m.Source === value));
}

/** `is-task=`: Docker's boolean filter values; conflicting or other values are refused. */
function taskFilterOf(values: string[]): boolean {
  const isFalse = values.includes('0') || values.includes('false');
  const isTrue = values.includes('1') || values.includes('true');
  if (values.length === 0) throw invalid("invalid filter 'is-task'");
  if (isFalse === isTrue) throw invalid(`invalid filter 'is-task=[${values.join(' ')}]'`);
  return isTrue;
}

/** `publish=`/`expose=` values (port[/proto] or start-end[/proto]) as the set of "port/proto" they name. */
function portSetOf(key: 'publish' | 'expose', values: string[]): Set<string> {
  const set = new Set<string>();
  for (const value of values) {
    if (value.includes(':')) throw invalid(`filter for '${key}' should not contain ':': ${value}`);
    const { start, end, proto } = parsePortRange(value, (reason) => invalid(`error while looking up for ${key} ${value}: ${reason}`));
    // A range is walked port by port as Docker does; 65536 entries at most.
    for (let port = start; port <= end; port++) set.add(`${port}/${proto}`);
  }
  return set;
}

/** Docker's ParsePortRange: "80", "80/udp", "8000-8080", "8000-8080/tcp"; the protocol defaults to tcp. */
function parsePortRange(value: string, fail: (reason: string) => Error): { start: number; end: number; proto: string } {
  if (value === '') throw fail('invalid port range: value is empty');
  const slash = value.indexOf('/');
  const range = slash < 0 ? value : value.slice(0, slash);
  const proto = slash < 0 || value.slice(slash + 1) === '' ? 'tcp' : value.slice(slash + 1).toLowerCase();
  const dash = range.indexOf('-');
  const startText = dash < 0 ? range : range.slice(0, dash);
  const start = portNumber(startText, (reason) => fail(`invalid start port '${startText}': ${reason}`));
  if (dash < 0) return { start, end: start, proto };
  const endText = range.slice(dash + 1);
  if (endText === startText) return { start, end: start, proto };
  const end = portNumber(endText, (reason) => fail(`invalid end port '${endText}': ${reason}`));
  if (end < start) throw fail(`invalid port range: ${value}`);
  return { start, end, proto };
}

/** Go's strconv.ParseUint(s, 10, 16), with its bare reasons. */
function portNumber(text: string, fail: (reason: string) => Error): number {
  if (text === '') throw fail('value is empty');
  if (!/^\d+$/.test(text)) throw fail('invalid syntax');
  const n = Number(text);
  if (n > 65535) throw fail('value out of range');
  return n;
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

/** A prune `until`: unix seconds, an RFC 3339 time or a Go duration back from now ("10m", "1h30m"). */
function untilTime(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const duration = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value);
  if (duration && value !== '') return Date.now() - ((Number(duration[1] ?? 0) * 60 + Number(duration[2] ?? 0)) * 60 + Number(duration[3] ?? 0)) * 1000;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw invalid(`invalid filter 'until=${value}'`);
  return t;
}
