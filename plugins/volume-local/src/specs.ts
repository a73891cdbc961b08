import { posix } from 'node:path';
import { invalid } from '@tsengine/core';

/** One mount of a container as the service stores it (Docker's MountPoint plus what the start needs). */
export interface MountRecord {
  Type: 'bind' | 'volume' | 'tmpfs';
  Destination: string;
  /** Host path of a bind; empty for volumes (their driver says where) and tmpfs. */
  Source: string;
  /** Volume name; generated for anonymous volumes at prepare. */
  Name?: string;
  Driver?: string;
  RW: boolean;
  Mode: string;
  Propagation: string;
  /** The mount gave no volume name (`-v /data`, image VOLUME): `rm -v` removes the volume. */
  Anonymous?: boolean;
  /** Fill an empty volume from the image's content at the destination on the container's first start. */
  CopyData?: boolean;
  /** The copy-up was done (Docker copies once, for the container's first use). */
  Copied?: boolean;
  /** Bind mounts without MS_REC (--mount bind-recursive=disabled / BindOptions.NonRecursive). */
  NonRecursive?: boolean;
  /** tmpfs flags and data ("size=64m", "mode=1777", "noexec"). */
  TmpfsOptions?: string[];
  /** --tmpfs mounts are not among inspect's Mounts in Docker. */
  Hidden?: boolean;
  /** For a volume created by this mount (--mount volume-opt/volume-label/volume-driver). */
  VolumeOptions?: Record<string, string>;
  VolumeLabels?: Record<string, string>;
}

/** Docker's api/types/mount.Mount as the CLI sends it in HostConfig.Mounts. */
export interface ApiMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean; ReadOnlyNonRecursive?: boolean; ReadOnlyForceRecursive?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null; Subpath?: string } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number; Options?: string[][] | null } | null;
}

const PROPAGATIONS = new Set(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared']);
const RW_MODES = new Set(['rw', 'ro']);
const LABEL_MODES = new Set(['z', 'Z']);
const COPY_MODES = new Set(['nocopy']);
const CONSISTENCY_MODES = new Set(['consistent', 'cached', 'delegated']);

/** Docker's linuxValidMountMode: known words, at most one of each kind. */
export function validMountMode(mode: string): boolean {
  if (mode === '') return true;
  const counts = [0, 0, 0, 0, 0];
  for (const word of mode.split(',')) {
    const kind = [RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES, CONSISTENCY_MODES].findIndex((set) => set.has(word));
    if (kind < 0) return false;
    counts[kind]!++;
  }
  return counts.every((n) => n <= 1);
}

function modeWords(mode: string): string[] {
  return mode === '' ? [] : mode.split(',');
}

/** Why a container path cannot be a mount destination, or undefined. */
function destinationProblem(target: string): string | undefined {
  if (!posix.isAbsolute(target)) return `invalid mount path: '${target}' mount path must be absolute`;
  if (posix.normalize(target) === '/' || /^\/+$/.test(target)) return "invalid specification: destination can't be '/'";
  return undefined;
}

export function cleanPath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

/** One `-v`/Binds entry: "/host:/ctr[:mode]", "name:/ctr[:mode]" or "/ctr" (Docker's ParseMountRaw). */
export function parseBind(raw: string, volumeDriver: string): MountRecord {
  const spec = () => `invalid volume specification: '${raw}'`;
  const parts = raw.split(':');
  if (parts[0] === '' || parts.length > 3) throw invalid(spec());
  let source = '';
  let target: string;
  let mode = '';
  if (parts.length === 1) target = parts[0]!;
  else if (parts.length === 2) {
    if (validMountMode(parts[1]!)) throw invalid(spec());
    [source, target] = [parts[0]!, parts[1]!];
  } else [source, target, mode] = [parts[0]!, parts[1]!, parts[2]!];
  if (!validMountMode(mode)) throw invalid(`invalid mode: ${mode}`);
  const problem = destinationProblem(target);
  if (problem) throw invalid(`${spec()}: ${problem}`);
  const words = modeWords(mode);
  const rw = !words.includes('ro');
  const destination = cleanPath(target);
  if (posix.isAbsolute(source)) {
    return {
      Type: 'bind',
      Source: cleanPath(source),
      Destination: destination,
      RW: rw,
      Mode: mode,
      Propagation: words.find((w) => PROPAGATIONS.has(w)) ?? 'rprivate',
    };
  }
  if (words.some((w) => PROPAGATIONS.has(w))) throw invalid(`${spec()}: invalid mode: ${mode}`);
  return {
    Type: 'volume',
    Source: '',
    Destination: destination,
    ...(source ? { Name: source } : { Anonymous: true }),
    Driver: volumeDriver || 'local',
    RW: rw,
    Mode: mode,
    Propagation: '',
    CopyData: !words.includes('nocopy'),
  };
}

/**
 * One HostConfig.Mounts entry (`--mount`), checked as Docker's validateMountConfig does, with its
 * messages. `bindSourceExists` tells whether a bind source is on the host.
 */
export function parseApiMount(m: ApiMount, volumeDriver: string, bindSourceExists: (path: string) => boolean): MountRecord {
  const type = m.Type ?? '';
  const fail = (why: string) => invalid(`invalid mount config for type "${type}": ${why}`);
  const target = m.Target ?? '';
  if (target === '') throw fail('field Target must not be empty');
  const problem = destinationProblem(target);
  if (problem) throw fail(problem);
  const destination = cleanPath(target);
  const rw = m.ReadOnly !== true;
  switch (type) {
    case 'bind': {
      const source = m.Source ?? '';
      if (source === '') throw fail('field Source must not be empty');
      const propagation = m.BindOptions?.Propagation ?? '';
      if (propagation !== '' && !PROPAGATIONS.has(propagation)) throw fail(`invalid propagation mode: ${propagation}`);
      if (m.VolumeOptions) throw fail('field VolumeOptions must not be specified');
      if (!posix.isAbsolute(source)) throw fail(`invalid mount path: '${source}' mount path must be absolute`);
      if (!m.BindOptions?.CreateMountpoint && !bindSourceExists(source)) throw fail(`bind source path does not exist: ${source}`);
      return {
        Type: 'bind',
        Source: cleanPath(source),
        Destination: destination,
        RW: rw,
        Mode: '',
        Propagation: propagation || 'rprivate',
        ...(m.BindOptions?.NonRecursive ? { NonRecursive: true } : {}),
      };
    }
    case 'volume': {
      if (m.BindOptions) throw fail('field BindOptions must not be specified');
      const name = m.Source ?? '';
      if (m.VolumeOptions?.Subpath) throw fail('volume subpaths are not supported');
      if (!rw && name === '') throw fail('must not set ReadOnly mode when using anonymous volumes');
      const options = m.VolumeOptions?.DriverConfig?.Options ?? undefined;
      const labels = m.VolumeOptions?.Labels ?? undefined;
      return {
        Type: 'volume',
        Source: '',
        Destination: destination,
        ...(name ? { Name: name } : { Anonymous: true }),
        Driver: m.VolumeOptions?.DriverConfig?.Name || volumeDriver || 'local',
        RW: rw,
        Mode: '',
        Propagation: '',
        CopyData: m.VolumeOptions?.NoCopy !== true,
        ...(options && Object.keys(options).length ? { VolumeOptions: { ...options } } : {}),
        ...(labels && Object.keys(labels).length ? { VolumeLabels: { ...labels } } : {}),
      };
    }
    case 'tmpfs': {
      if (m.BindOptions) throw fail('field BindOptions must not be specified');
      if (m.Source) throw fail('field Source must not be specified');
      return { Type: 'tmpfs', Source: '', Destination: destination, RW: rw, Mode: '', Propagation: '', TmpfsOptions: tmpfsOptionsOf(m, fail) };
    }
    default:
      throw fail('mount type unknown');
  }
}

/** Docker's ConvertTmpfsOptions: mode in octal, the size with the largest exact suffix, exec/noexec. */
function tmpfsOptionsOf(m: ApiMount, fail: (why: string) => Error): string[] {
  const options = ['nosuid', 'nodev', 'noexec'];
  const o = m.TmpfsOptions;
  if (o?.Mode) options.push(`mode=${o.Mode.toString(8)}`);
  if (o?.SizeBytes) {
    let size = o.SizeBytes;
    let suffix = '';
    for (const [s, divisor] of [['g', 2 ** 30], ['m', 2 ** 20], ['k', 2 ** 10]] as const) {
      if (size % divisor === 0) {
        size /= divisor;
        suffix = s;
        break;
      }
    }
    options.push(`size=${size}${suffix}`);
  }
  for (const opt of o?.Options ?? []) {
    if (opt.length < 1 || opt.length > 2) throw fail('invalid option array length');
    if (opt[0] !== 'exec' && opt[0] !== 'noexec') throw fail(`invalid option: ${opt[0]}`);
    options.push(opt.length === 1 ? opt[0] : `${opt[0]}=${opt[1]}`);
  }
  return options;
}

/** One HostConfig.Tmpfs entry (`--tmpfs /run:size=64m,ro`). */
export function parseTmpfs(path: string, options: string): MountRecord {
  const problem = destinationProblem(path);
  if (problem) throw invalid(`invalid tmpfs mount: ${path}: ${problem}`);
  const words = options.split(',').filter(Boolean);
  return {
    Type: 'tmpfs',
    Source: '',
    Destination: cleanPath(path),
    RW: !words.includes('ro'),
    Mode: options,
    Propagation: '',
    TmpfsOptions: ['nosuid', 'nodev', 'noexec', ...words.filter((w) => w !== 'ro' && w !== 'rw')],
    Hidden: true,
  };
}

/** A volumes-from spec "id[:ro|rw]" (the ID already resolved by the containers plugin). */
export function parseVolumesFrom(spec: string): { id: string; mode: '' | 'ro' | 'rw' } {
  if (spec === '') throw invalid('volumes-from specification cannot be an empty string');
  const colon = spec.indexOf(':');
  if (colon < 0) return { id: spec, mode: '' };
  const mode = spec.slice(colon + 1);
  if (mode !== 'ro' && mode !== 'rw' && !(validMountMode(mode) && modeWords(mode).every((w) => RW_MODES.has(w) || LABEL_MODES.has(w)))) {
    throw invalid(`invalid mode: ${mode}`);
  }
  return { id: spec.slice(0, colon), mode: modeWords(mode).includes('ro') ? 'ro' : 'rw' };
}

/** Parents before children: Docker mounts in order of the destination's depth. */
export function byDepth(a: MountRecord, b: MountRecord): number {
  const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);
  return depth(a.Destination) - depth(b.Destination);
}
