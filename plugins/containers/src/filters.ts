import { type ContainerListFilters, invalid } from '@tsengine/core';
import type { ContainerRecord } from './manager.js';

/** The filters this engine applies; others are refused rather than silently ignored. */
const KNOWN = new Set(['status', 'name', 'label', 'label!', 'id', 'ancestor', 'exited', 'until', 'before', 'since']);
const STATUSES = new Set(['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead']);

/** Docker's container filters: any value of one key may match, every key must. */
export async function listFilterOf(
  filters: ContainerListFilters,
  resolveImage: (ref: string) => Promise<string | undefined>,
  container: (ref: string) => ContainerRecord,
): Promise<(record: ContainerRecord) => boolean> {
  for (const key of Object.keys(filters)) if (!KNOWN.has(key)) throw invalid(`invalid filter '${key}'`);
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
    return true;
  };
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
