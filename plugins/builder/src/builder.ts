import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  type BuildRequest,
  type BuildResult,
  type ContainerConfig,
  ContainerStartError,
  type ExecDriver,
  type GraphDriver,
  type ImageService,
  type Logger,
  type ResolvedImage,
  errorKind,
  errorMessage,
  invalid,
  notFound,
} from '@tsengine/core';
import { applyLayer } from '@tsengine/archive';
import { type BuildCache, cacheKey } from './cache.js';
import { type Owner, type Source, copyInto, digestSources, resolveChown } from './copy.js';
import { IgnoreMatcher, pruneContext } from './dockerignore.js';
import { BuildOutput } from './output.js';
import { type Instruction, expandWord, expandWords, jsonForm, parseDockerfile, parseFlags, parseNameValues, splitWords } from './parser.js';
import { mkdirInScope, resolveInScope } from './scope.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Build args docker accepts without an ARG line; they never enter the history or the cache key. */
export const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

/** A failed step; `code` becomes errorDetail.code (the RUN's exit status), which the docker CLI exits with. */
export class BuildStepError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
    this.name = 'BuildStepError';
  }
}

export interface BuilderServices {
  graph: GraphDriver;
  exec: ExecDriver;
  images: ImageService;
  cache: BuildCache;
  /** Scratch space on the data root's filesystem (contexts are extracted here). */
  tmpRoot: string;
  log: Logger;
  /** Pulls a missing base image (the registry plugin's image.pull), writing docker's progress lines to `progress`; absent without one. */
  pull?: (reference: string, progress: Writable, signal: AbortSignal) => Promise<void>;
}

interface Stage {
  index: number;
  name?: string;
  from: Instruction;
  steps: Instruction[];
}

/** What one stage holds while it is built. */
interface StageState {
  imageId: string | null;
  image: ResolvedImage | null;
  config: ContainerConfig;
  args: Map<string, string | undefined>;
  cmdSet: boolean;
  author?: string;
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

function setEnv(env: string[], name: string, value: string): string[] {
  const out = env.filter((e) => envName(e) !== name);
  const at = env.findIndex((e) => envName(e) === name);
  const entry = `${name}=${value}`;
  if (at < 0) return [...out, entry];
  out.splice(at, 0, entry);
  return out;
}

function getEnv(env: string[] | null | undefined, name: string): string | undefined {
  const entry = (env ?? []).find((e) => envName(e) === name);
  return entry === undefined ? undefined : entry.slice(name.length + 1);
}

/** Go's time.ParseDuration for HEALTHCHECK flags, in nanoseconds. */
export function parseGoDuration(text: string, flag: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * units[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched !== text.length || text === '') throw invalid(`time: invalid duration "${text}" for --${flag}`);
  return Math.round(total);
}

/** One build: the context, the Dockerfile's stages and the state of the stage being built. */
export class Build {
  private readonly out: BuildOutput;
  private contextDir = '';
  private escape = '\\';
  private step = 0;
  private totalSteps = 0;
  private readonly metaArgs = new Map<string, string | undefined>();
  private readonly consumedArgs = new Set<string>();
  private readonly stageImages = new Map<string, string | null>();
  private readonly stageByIndex: Array<string | null> = [];
  /** RW layers and mounts made by this build, removed at the end whatever happens. */
  private readonly scratchLayers = new Set<string>();
  private running: string | undefined;

  constructor(
    private readonly services: BuilderServices,
    private readonly request: BuildRequest,
    stdout: Writable,
    private readonly signal: AbortSignal,
  ) {
    this.out = new BuildOutput(stdout, request.quiet === true);
  }

  /** Runs the build. Failures after output started are reported in the stream and returned; earlier ones throw. */
  async run(context: Readable): Promise<BuildResult> {
    const onAbort = () => {
      if (this.running) void this.services.exec.kill(this.running, 'SIGKILL').catch(() => undefined);
    };
    this.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const id = await this.build(context);
      return { id };
    } catch (err) {
      if (errorKind(err) === 'cancelled' || this.signal.aborted) throw err;
      const code = err instanceof BuildStepError ? err.code : 1;
      const message = errorMessage(err);
      if (!this.out.started && !(err instanceof BuildStepError)) throw err;
      this.out.error(code, message);
      return { failure: { code, message } };
    } finally {
      this.signal.removeEventListener('abort', onAbort);
      await this.cleanup();
    }
  }

  private async cleanup(): Promise<void> {
    for (const id of this.scratchLayers) await this.dropLayer(id);
    if (this.contextDir) await rm(this.contextDir, { recursive: true, force: true }).catch(() => undefined);
  }

  private async dropLayer(id: string): Promise<void> {
    this.scratchLayers.delete(id);
    await this.services.graph.put(id).catch(() => undefined);
    await this.services.graph.remove(id).catch((err) => this.services.log.warn({ id, err: errorMessage(err) }, 'removing a build layer failed'));
    await this.services.images.releaseLayers(id).catch(() => undefined);
  }

  private async build(context: Readable): Promise<string> {
    const tags = this.request.tags ?? [];
    for (const tag of tags) validateTag(tag);
    const network = this.networkMode();
    await mkdir(this.services.tmpRoot, { recursive: true });
    this.contextDir = await mkdtemp(join(this.services.tmpRoot, 'context-'));
    await applyLayer(this.contextDir, context, { whiteouts: 'delete', signal: this.signal });
    const dockerfileName = await this.locateDockerfile();
    const ignoreFile = await resolveInScope(this.contextDir, '.dockerignore');
    const ignoreText = await readFile(ignoreFile, 'utf8').catch(() => '');
    const dockerfileText = await readFile(await resolveInScope(this.contextDir, dockerfileName), 'utf8');
    // Read first: docker drops the Dockerfile and .dockerignore from the context too when they are listed.
    await pruneContext(this.contextDir, new IgnoreMatcher(ignoreText));

    const parsed = parseDockerfile(dockerfileText);
    this.escape = parsed.escape;
    const { globalArgs, stages } = splitStages(parsed.instructions);
    if (parsed.instructions.length === 0) throw invalid(`the Dockerfile (${dockerfileName}) cannot be empty`);
    if (stages.length === 0) throw invalid('no build stage in current context');
    let last = stages.length - 1;
    if (this.request.target) {
      const found = stages.findIndex((s) => s.name === this.request.target!.toLowerCase());
      if (found < 0) throw invalid(`failed to reach build target ${this.request.target} in Dockerfile`);
      last = found;
    }
    const labels = Object.entries(this.request.labels ?? {});
    this.totalSteps = globalArgs.length + stages.slice(0, last + 1).reduce((n, s) => n + 1 + s.steps.length, 0) + (labels.length ? 1 : 0);

    for (const arg of globalArgs) {
      this.announce(arg);
      for (const [name, value] of parseNameValues(arg, (n) => this.metaArgs.get(n), this.escape, true)) {
        this.metaArgs.set(name, this.buildArg(name) ?? value);
      }
    }
    let result: string | null = null;
    for (const stage of stages.slice(0, last + 1)) {
      const state = await this.fromStep(stage);
      for (const instruction of stage.steps) {
        this.announce(instruction);
        await this.dispatch(state, instruction, network);
      }
      if (stage.index === last && labels.length) {
        const text = `LABEL ${labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ')}`;
        const instruction: Instruction = { keyword: 'label', original: text, flags: [], rest: text.slice(6), line: 0 };
        this.announce(instruction);
        await this.dispatch(state, instruction, network);
      }
      this.stageByIndex[stage.index] = state.imageId;
      if (stage.name) this.stageImages.set(stage.name, state.imageId);
      result = state.imageId;
    }
    if (!result) throw new BuildStepError('No image was generated. Is your Dockerfile empty?');
    const unused = Object.keys(this.request.buildArgs ?? {}).filter((a) => !this.consumedArgs.has(a));
    if (unused.length) this.out.text(`[Warning] One or more build-args [${unused.sort().join(' ')}] were not consumed\n`);
    this.out.aux({ ID: result });
    this.out.text(`Successfully built ${shortId(result)}\n`);
    for (const tag of tags) {
      await this.services.images.tag(result, tag);
      this.out.text(`Successfully tagged ${withDefaultTag(tag)}\n`);
    }
    this.out.quietResult(result);
    return result;
  }

  private async locateDockerfile(): Promise<string> {
    const requested = this.request.dockerfile || 'Dockerfile';
    const candidates = this.request.dockerfile ? [requested] : ['Dockerfile', 'dockerfile'];
    for (const name of candidates) {
      try {
        if ((await lstat(await resolveInScope(this.contextDir, name))).isFile()) return name;
      } catch {
        // next candidate
      }
    }
    throw invalid(`Cannot locate specified Dockerfile: ${requested}`);
  }

  private networkMode(): 'none' | 'host' {
    const mode = this.request.networkMode ?? '';
    if (mode === '' || mode === 'default' || mode === 'none') return 'none';
    if (mode === 'host') return 'host';
    throw invalid(`network mode "${mode}" is not supported by the builder: RUN steps use "none" (default) or "host"`);
  }

  private buildArg(name: string): string | undefined {
    const args = this.request.buildArgs ?? {};
    if (!(name in args)) return undefined;
    this.consumedArgs.add(name);
    return args[name] ?? undefined;
  }

  private announce(instruction: Instruction): void {
    this.step++;
    this.out.text(`Step ${this.step}/${this.totalSteps} : ${instruction.original}\n`);
  }

  private lookup(state: StageState): (name: string) => string | undefined {
    return (name) => {
      const env = getEnv(state.config.Env, name);
      if (env !== undefined) return env;
      if (state.args.has(name)) return state.args.get(name);
      if (PROXY_ARGS.includes(name)) return this.buildArg(name);
      return undefined;
    };
  }

  // ---- FROM ----

  private async fromStep(stage: Stage): Promise<StageState> {
    this.announce(stage.from);
    parseFlags(stage.from, ['platform']); // --platform is accepted; images here are the host's platform
    const words = splitWords(stage.from.rest, this.escape);
    if (words.length !== 1 && !(words.length === 3 && words[1]!.toLowerCase() === 'as')) throw invalid('FROM requires either one or three arguments');
    const base = expandWord(words[0]!, (n) => this.metaArgs.get(n), this.escape);
    if (base === '') throw invalid('base name (' + words[0] + ') should not be blank');
    const state: StageState = { imageId: null, image: null, config: {}, args: new Map(), cmdSet: false };
    if (this.stageImages.has(base.toLowerCase())) {
      state.imageId = this.stageImages.get(base.toLowerCase()) ?? null;
    } else if (base.toLowerCase() !== 'scratch') {
      state.imageId = (await this.resolveImage(base)).id;
    }
    if (state.imageId) {
      state.image = await this.services.images.resolve(state.imageId);
      state.config = structuredClone(state.image.config.config ?? {});
    }
    if (getEnv(state.config.Env, 'PATH') === undefined) state.config.Env = [...(state.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
    this.out.text(` ---> ${state.imageId ? shortId(state.imageId) : ''}\n`);
    const triggers = state.config.OnBuild ?? [];
    if (triggers.length) {
      state.config.OnBuild = null;
      this.out.text(`# Executing ${triggers.length} build trigger${triggers.length === 1 ? '' : 's'}\n`);
      for (const trigger of triggers) {
        const [instruction] = parseDockerfile(trigger).instructions;
        if (!instruction) continue;
        await this.dispatch(state, instruction, this.networkMode());
      }
    }
    return state;
  }

  private async resolveImage(name: string): Promise<ResolvedImage> {
    try {
      return await this.services.images.resolve(name);
    } catch (err) {
      if (errorKind(err) !== 'notfound') throw err;
      if (!this.services.pull) throw notFound(`${errorMessage(err)}: the image is not present locally and no registry plugin is loaded to pull it`, err);
    }
    await this.services.pull(name, this.out.progressStream(), this.signal);
    return this.services.images.resolve(name);
  }

  // ---- instructions ----

  private async dispatch(state: StageState, ins: Instruction, network: 'none' | 'host'): Promise<void> {
    this.signal.throwIfAborted();
    const lookup = this.lookup(state);
    const esc = this.escape;
    const kw = ins.keyword.toUpperCase();
    const nop = (text: string) => `/bin/sh -c #(nop)  ${text}`;
    if (ins.keyword !== 'copy' && ins.keyword !== 'add') parseFlags(ins, ins.keyword === 'healthcheck' ? ['interval', 'timeout', 'start-period', 'start-interval', 'retries'] : []);
    switch (ins.keyword) {
      case 'env': {
        const pairs = parseNameValues(ins, lookup, esc);
        let env = state.config.Env ?? [];
        for (const [name, value] of pairs) env = setEnv(env, name, value ?? '');
        state.config.Env = env;
        return this.commitMeta(state, nop(`ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`));
      }
      case 'label': {
        const pairs = parseNameValues(ins, lookup, esc);
        state.config.Labels = { ...(state.config.Labels ?? {}) };
        for (const [name, value] of pairs) state.config.Labels[name] = value ?? '';
        return this.commitMeta(state, nop(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`));
      }
      case 'maintainer':
        state.author = expandWord(ins.rest, lookup, esc);
        return this.commitMeta(state, nop(`MAINTAINER ${state.author}`));
      case 'arg': {
        const pairs = parseNameValues(ins, lookup, esc, true);
        for (const [name, fallback] of pairs) {
          const given = this.buildArg(name);
          this.consumedArgs.add(name);
          state.args.set(name, given ?? fallback ?? this.metaArgs.get(name));
        }
        return this.commitMeta(state, nop(`ARG ${pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(' ')}`));
      }
      case 'workdir': {
        const dir = expandWord(ins.rest, lookup, esc);
        if (dir === '') throw invalid('WORKDIR requires exactly one argument');
        state.config.WorkingDir = posix.resolve(state.config.WorkingDir || '/', dir);
        return this.workdirStep(state, nop(`WORKDIR ${state.config.WorkingDir}`));
      }
      case 'user': {
        const user = expandWord(ins.rest, lookup, esc);
        if (user === '') throw invalid('USER requires exactly one argument');
        state.config.User = user;
        return this.commitMeta(state, nop(`USER ${user}`));
      }
      case 'expose': {
        const ports = expandWords(ins.rest, lookup, esc);
        if (ports.length === 0) throw invalid('EXPOSE requires at least one argument');
        state.config.ExposedPorts = { ...(state.config.ExposedPorts ?? {}) };
        for (const port of ports.flatMap(expandPortRange)) state.config.ExposedPorts[port] = {};
        return this.commitMeta(state, nop(`EXPOSE ${Object.keys(state.config.ExposedPorts).sort().join(' ')}`));
      }
      case 'volume': {
        const volumes = jsonForm(ins.rest) ?? expandWords(ins.rest, lookup, esc);
        if (volumes.length === 0) throw invalid('VOLUME requires at least one argument');
        state.config.Volumes = { ...(state.config.Volumes ?? {}) };
        for (const v of volumes) {
          if (v.trim() === '') throw invalid('VOLUME specified can not be an empty string');
          state.config.Volumes[v] = {};
        }
        return this.commitMeta(state, nop(`VOLUME [${volumes.join(' ')}]`));
      }
      case 'stopsignal': {
        const sig = expandWord(ins.rest, lookup, esc);
        if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/.test(sig)) throw invalid(`Invalid signal: ${sig}`);
        state.config.StopSignal = sig;
        return this.commitMeta(state, nop(`STOPSIGNAL ${sig}`));
      }
      case 'shell': {
        const shell = jsonForm(ins.rest);
        if (!shell) throw invalid('SHELL requires the arguments to be in JSON form');
        if (shell.length === 0) throw invalid('SHELL requires at least one argument');
        state.config.Shell = shell;
        return this.commitMeta(state, nop(`SHELL [${shell.join(' ')}]`));
      }
      case 'cmd': {
        state.config.Cmd = this.commandLine(state, ins);
        state.cmdSet = true;
        return this.commitMeta(state, nop(`CMD ${goList(state.config.Cmd)}`));
      }
      case 'entrypoint': {
        const entry = this.commandLine(state, ins);
        state.config.Entrypoint = entry.length ? entry : null;
        if (!state.cmdSet) state.config.Cmd = null;
        return this.commitMeta(state, nop(`ENTRYPOINT ${goList(entry)}`));
      }
      case 'healthcheck':
        state.config.Healthcheck = this.healthcheck(ins);
        return this.commitMeta(state, nop(`HEALTHCHECK ${ins.rest}`));
      case 'onbuild': {
        const [inner] = parseDockerfile(ins.rest).instructions;
        if (!inner) throw invalid('ONBUILD requires at least one argument');
        if (['onbuild', 'from', 'maintainer'].includes(inner.keyword)) throw invalid(`${inner.keyword.toUpperCase()} isn't allowed as an ONBUILD trigger`);
        state.config.OnBuild = [...(state.config.OnBuild ?? []), inner.original];
        return this.commitMeta(state, nop(`ONBUILD ${inner.original}`));
      }
      case 'run':
        return this.runStep(state, ins, network);
      case 'copy':
      case 'add':
        return this.copyStep(state, ins, kw);
      default:
        throw invalid(`unknown instruction: ${kw}`);
    }
  }

  private commandLine(state: StageState, ins: Instruction): string[] {
    const json = jsonForm(ins.rest);
    if (json) return json;
    if (ins.rest === '') return [];
    return [...(state.config.Shell ?? DEFAULT_SHELL), ins.rest];
  }

  private healthcheck(ins: Instruction): ContainerConfig['Healthcheck'] {
    const words = splitWords(ins.rest, this.escape);
    const type = (words[0] ?? '').toUpperCase();
    if (type === 'NONE') {
      if (words.length > 1 || ins.flags.length) throw invalid('HEALTHCHECK NONE takes no arguments');
      return { Test: ['NONE'] };
    }
    if (type !== 'CMD') throw invalid(`Unknown type "${type}" in HEALTHCHECK (try CMD)`);
    const rest = ins.rest.slice(ins.rest.search(/cmd/i) + 3).trim();
    const json = jsonForm(rest);
    const test = json ? ['CMD', ...json] : ['CMD-SHELL', rest];
    const flags = parseFlags(ins, ['interval', 'timeout', 'start-period', 'start-interval', 'retries']);
    const check: Record<string, unknown> = { Test: test };
    for (const [flag, key] of [['interval', 'Interval'], ['timeout', 'Timeout'], ['start-period', 'StartPeriod'], ['start-interval', 'StartInterval']] as const) {
      const value = flags.get(flag);
      if (value !== undefined) check[key] = parseGoDuration(value, flag);
    }
    const retries = flags.get('retries');
    if (retries !== undefined) {
      if (!/^\d+$/.test(retries) || Number(retries) < 1) throw invalid('--retries must be at least 1');
      check.Retries = Number(retries);
    }
    return check;
  }

  // ---- commits and the cache ----

  private async cached(state: StageState, createdBy: string): Promise<{ key: string; hit?: string }> {
    const key = cacheKey({ parent: state.imageId, createdBy, config: state.config });
    if (this.request.noCache) return { key };
    const hit = await this.services.cache.lookup(key, async (id) => {
      try {
        await this.services.images.resolve(id);
        return true;
      } catch {
        return false;
      }
    });
    return hit ? { key, hit } : { key };
  }

  private async adopt(state: StageState, id: string): Promise<void> {
    state.imageId = id;
    state.image = await this.services.images.resolve(id);
  }

  private async useCache(state: StageState, id: string): Promise<void> {
    this.out.text(` ---> Using cache\n ---> ${shortId(id)}\n`);
    await this.adopt(state, id);
  }

  /** A step that changes only the config: a new image on the same layers. */
  private async commitMeta(state: StageState, createdBy: string): Promise<void> {
    const { key, hit } = await this.cached(state, createdBy);
    if (hit) return this.useCache(state, hit);
    // Docker's legacy builder commits config-only steps through a container too, and says so.
    const container = randomBytes(6).toString('hex');
    this.out.text(` ---> Running in ${container}\nRemoving intermediate container ${container}\n`);
    const id = await this.services.images.createImage({
      ...(state.imageId ? { parent: state.imageId } : {}),
      layer: null,
      config: structuredClone(state.config),
      history: { created_by: createdBy, empty_layer: true },
      ...(state.author ? { meta: { author: state.author } } : {}),
    });
    await this.services.cache.store(key, id);
    await this.adopt(state, id);
    this.out.text(` ---> ${shortId(id)}\n`);
  }

  /** A step that writes files: a fresh RW layer on the current image, `work` in it, then its diff as the new layer. */
  private async commitLayer(state: StageState, key: string, createdBy: string, work: (root: string, id: string) => Promise<void>, emptyIfUnchanged = false): Promise<string> {
    const id = randomBytes(32).toString('hex');
    const parentTop = state.image?.topLayer ?? null;
    const chainTop = state.image?.chain.at(-1);
    this.scratchLayers.add(id);
    try {
      if (chainTop) await this.services.images.retainLayer(chainTop, id);
      await this.services.graph.createReadWrite(id, parentTop);
      const root = await this.services.graph.get(id);
      try {
        await work(root, id);
      } finally {
        await this.services.graph.put(id);
      }
      // A step that changed nothing adds no layer (docker marks such history entries empty_layer).
      const unchanged = emptyIfUnchanged && (await this.services.graph.changes(id, parentTop)).length === 0;
      const image = await this.services.images.createImage({
        ...(state.imageId ? { parent: state.imageId } : {}),
        layer: unchanged ? null : await this.services.graph.diff(id, parentTop),
        config: structuredClone(state.config),
        history: { created_by: createdBy, ...(unchanged ? { empty_layer: true } : {}) },
        ...(state.author ? { meta: { author: state.author } } : {}),
      });
      await this.services.cache.store(key, image);
      await this.adopt(state, image);
      return image;
    } finally {
      await this.dropLayer(id);
    }
  }

  /** WORKDIR creates its directory in the image when it is missing, as docker's legacy builder does. */
  private async workdirStep(state: StageState, createdBy: string): Promise<void> {
    const { key, hit } = await this.cached(state, createdBy);
    if (hit) return this.useCache(state, hit);
    const dir = state.config.WorkingDir!;
    const image = await this.commitLayer(
      state,
      key,
      createdBy,
      async (root, id) => {
        this.out.text(` ---> Running in ${id.slice(0, 12)}\nRemoving intermediate container ${id.slice(0, 12)}\n`);
        await mkdirInScope(root, dir);
      },
      true,
    );
    this.out.text(` ---> ${shortId(image)}\n`);
  }

  // ---- RUN ----

  private async runStep(state: StageState, ins: Instruction, network: 'none' | 'host'): Promise<void> {
    const argv = this.commandLine(state, ins);
    if (argv.length === 0) throw invalid('RUN requires at least one argument');
    const argEnv = [...state.args].filter(([name, value]) => value !== undefined && !PROXY_ARGS.includes(name) && getEnv(state.config.Env, name) === undefined).map(([k, v]) => `${k}=${v}`);
    const proxyEnv = PROXY_ARGS.flatMap((name) => {
      const value = this.request.buildArgs?.[name];
      if (value === undefined || value === null) return [];
      this.consumedArgs.add(name);
      return [`${name}=${value}`];
    });
    const createdBy = `${argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ` : ''}${argv.join(' ')}`;
    const { key, hit } = await this.cached(state, createdBy);
    if (hit) return this.useCache(state, hit);
    let exitCode = 0;
    const image = await this.commitLayer(state, key, createdBy, async (root, id) => {
      this.out.text(` ---> Running in ${id.slice(0, 12)}\n`);
      exitCode = await this.execute(state, id, root, argv, [...argEnv, ...proxyEnv], network);
      if (exitCode !== 0) throw new BuildStepError(`The command '${argv.join(' ')}' returned a non-zero code: ${exitCode}`, exitCode);
      this.out.text(`Removing intermediate container ${id.slice(0, 12)}\n`);
    });
    this.out.text(` ---> ${shortId(image)}\n`);
  }

  private async execute(state: StageState, id: string, rootfs: string, argv: string[], extraEnv: string[], network: 'none' | 'host'): Promise<number> {
    const env = [...(state.config.Env ?? [])];
    if (getEnv(env, 'PATH') === undefined) env.unshift(`PATH=${DEFAULT_PATH}`);
    env.splice(1, 0, `HOSTNAME=${id.slice(0, 12)}`);
    let proc;
    try {
      proc = await this.services.exec.start(
        {
          id,
          rootfs,
          process: { args: argv, env: [...env, ...extraEnv], cwd: state.config.WorkingDir || '/', user: state.config.User ?? '', terminal: false },
          hostname: id.slice(0, 12),
          readonlyRootfs: false,
          privileged: false,
          capAdd: [],
          capDrop: [],
          noNewPrivileges: false,
          mounts: [],
          network: { mode: network },
          resources: {},
        },
        { stdin: false },
      );
    } catch (err) {
      if (err instanceof ContainerStartError) throw new BuildStepError(`failed to create task for container: unable to start container process: ${err.message}: unknown`, err.exitCode);
      throw err;
    }
    this.running = id;
    // The client may have gone (or the daemon begun to stop) while the process was starting.
    if (this.signal.aborted) await this.services.exec.kill(id, 'SIGKILL').catch(() => undefined);
    try {
      proc.stdout.on('data', (chunk: Buffer) => this.out.text(chunk.toString('utf8')));
      proc.stderr?.on('data', (chunk: Buffer) => this.out.text(chunk.toString('utf8')));
      const status = await proc.exited;
      this.signal.throwIfAborted();
      return status.exitCode;
    } finally {
      this.running = undefined;
      await this.services.exec.destroy(id).catch((err) => this.services.log.warn({ id, err: errorMessage(err) }, 'destroying a build container failed'));
    }
  }

  // ---- COPY / ADD ----

  private async copyStep(state: StageState, ins: Instruction, kw: string): Promise<void> {
    const flags = parseFlags(ins, kw === 'COPY' ? ['from', 'chown'] : ['chown']);
    const lookup = this.lookup(state);
    const words = (jsonForm(ins.rest) ?? ins.rest.split(/\s+/).filter(Boolean)).map((w) => expandWord(w, lookup, this.escape));
    if (words.length < 2) throw invalid(`${kw} requires at least two arguments, but only one was provided. Destination could not be determined.`);
    const rawDest = words[words.length - 1]!;
    const sources = words.slice(0, -1);
    // Relative destinations start at WORKDIR; a trailing "/" (or ".") means "into this directory".
    let dest = rawDest.startsWith('/') ? rawDest : posix.join(state.config.WorkingDir || '/', rawDest);
    if ((rawDest.endsWith('/') || rawDest === '.' || rawDest.endsWith('/.')) && !dest.endsWith('/')) dest += '/';
    if (dest.endsWith('/.')) dest = dest.slice(0, -1);
    const from = flags.get('from');
    const chown = flags.has('chown') ? expandWord(flags.get('chown')!, lookup, this.escape) : undefined;
    const mounted = from !== undefined ? await this.mountSource(from) : { root: this.contextDir, release: async () => undefined };
    try {
      const resolved: Source[] = [];
      let wildcard = false;
      for (const source of sources) {
        if (/^https?:\/\//i.test(source)) {
          if (kw === 'COPY') throw new BuildStepError('source can\'t be a URL for COPY');
          throw new BuildStepError(`ADD from a URL (${source}) is not supported by this builder; download the file into the build context and ADD it from there`);
        }
        if (/[*?[]/.test(source)) {
          wildcard = true;
          resolved.push(...(await globSources(mounted.root, source)));
          continue;
        }
        const host = await resolveInScope(mounted.root, source);
        try {
          await lstat(host);
        } catch {
          throw new BuildStepError(
            from === undefined
              ? `${kw} failed: file not found in build context or excluded by .dockerignore: stat ${source}: file does not exist`
              : `${kw} failed: stat ${source}: file does not exist`,
          );
        }
        resolved.push({ host, name: posix.basename(posix.normalize(`/${source}`)) || '/' });
      }
      if (resolved.length === 0) throw new BuildStepError(`${kw} failed: no source files were specified`);
      if ((sources.length > 1 || wildcard) && resolved.length > 1 && !dest.endsWith('/')) {
        throw new BuildStepError(`When using ${kw} with more than one source file, the destination must be a directory and end with a /`);
      }
      const digest = await digestSources(resolved, from !== undefined);
      const single = resolved.length === 1 ? ((await lstat(resolved[0]!.host)).isDirectory() ? 'dir' : 'file') : 'multi';
      const createdBy = `/bin/sh -c #(nop) ${kw} ${chown ? `--chown=${chown} ` : ''}${single}:${digest} in ${dest} `;
      const { key, hit } = await this.cached(state, createdBy);
      if (hit) return this.useCache(state, hit);
      const image = await this.commitLayer(state, key, createdBy, async (root) => {
        const owner: Owner | undefined = chown !== undefined ? await resolveChown(root, chown) : from === undefined ? { uid: 0, gid: 0 } : undefined;
        await copyInto(root, dest, resolved, { owner, extractArchives: kw === 'ADD' });
      });
      this.out.text(` ---> ${shortId(image)}\n`);
    } finally {
      await mounted.release();
    }
  }

  /** The filesystem of a previous stage (by name or index) or of an image, mounted read-write on a scratch layer. */
  private async mountSource(from: string): Promise<{ root: string; release: () => Promise<void> }> {
    const name = from.toLowerCase();
    let imageId: string | null;
    if (this.stageImages.has(name)) imageId = this.stageImages.get(name) ?? null;
    else if (/^\d+$/.test(from) && Number(from) < this.stageByIndex.length) imageId = this.stageByIndex[Number(from)] ?? null;
    else imageId = (await this.resolveImage(from)).id;
    const image = imageId ? await this.services.images.resolve(imageId) : null;
    const id = randomBytes(32).toString('hex');
    this.scratchLayers.add(id);
    const chainTop = image?.chain.at(-1);
    if (chainTop) await this.services.images.retainLayer(chainTop, id);
    await this.services.graph.createReadWrite(id, image?.topLayer ?? null);
    const root = await this.services.graph.get(id);
    return { root, release: () => this.dropLayer(id) };
  }
}

/** Matches a COPY source pattern (Go filepath.Match, "/" not matched by wildcards) against a root's files. */
async function globSources(root: string, pattern: string): Promise<Source[]> {
  const parts = posix.normalize(pattern).replace(/^\/+/, '').split('/').filter((p) => p !== '.');
  const out: Source[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const regexp = globRegExp(parts[depth]!);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (!regexp.test(name)) continue;
      const path = join(dir, name);
      if (depth === parts.length - 1) out.push({ host: path, name });
      else if ((await lstat(path)).isDirectory()) await walk(path, depth + 1);
    }
  };
  if (parts.length) await walk(root, 0);
  return out;
}

function globRegExp(part: string): RegExp {
  let re = '^';
  for (let i = 0; i < part.length; i++) {
    const ch = part[i]!;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const end = part.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const cls = part.slice(i + 1, end);
        re += `[${cls.startsWith('^') || cls.startsWith('!') ? '^' + cls.slice(1) : cls}]`;
        i = end;
      }
    } else if (ch === '\\' && i + 1 < part.length) re += part[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

function splitStages(instructions: Instruction[]): { globalArgs: Instruction[]; stages: Stage[] } {
  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'from') {
      const words = ins.rest.split(/\s+/);
      const name = words.length === 3 && words[1]!.toLowerCase() === 'as' ? words[2]!.toLowerCase() : undefined;
      if (name !== undefined && !/^[a-z][a-z0-9-_.]*$/.test(name)) throw invalid(`invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
      if (name !== undefined && stages.some((s) => s.name === name)) throw invalid(`duplicate name ${words[2]}`);
      stages.push({ index: stages.length, ...(name ? { name } : {}), from: ins, steps: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'arg') throw invalid(`no build stage in current context`);
      globalArgs.push(ins);
    } else stages[stages.length - 1]!.steps.push(ins);
  }
  return { globalArgs, stages };
}

function expandPortRange(spec: string): string[] {
  const [ports = '', proto = 'tcp'] = spec.split('/');
  const range = /^(\d+)(?:-(\d+))?$/.exec(ports);
  if (!range) throw invalid(`Invalid containerPort: ${spec}`);
  const start = Number(range[1]);
  const end = range[2] ? Number(range[2]) : start;
  if (end < start || end > 65535) throw invalid(`Invalid range specified for the Port: ${spec}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}

/** How docker renders a string list in history lines: ["a" "b"]. */
function goList(values: string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(' ')}]`;
}

const TAG_PATTERN = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?$/;

function validateTag(tag: string): void {
  if (!TAG_PATTERN.test(tag)) {
    if (/[A-Z]/.test(tag.split(':')[0]!.split('/').pop() ?? '')) throw invalid(`invalid reference format: repository name (${tag}) must be lowercase`);
    throw invalid(`invalid reference format: ${tag}`);
  }
}

/** Docker's "Successfully tagged" form: familiar name (docker.io/library/ dropped), ":latest" added when untagged. */
function withDefaultTag(tag: string): string {
  const familiar = tag.replace(/^docker\.io\/library\/(?=[^/]+$)/, '').replace(/^docker\.io\//, '');
  const last = familiar.split('/').pop() ?? familiar;
  return last.includes(':') || familiar.includes('@') ? familiar : `${familiar}:latest`;
}

