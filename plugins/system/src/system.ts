import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import {
  type CapabilityProviders,
  type DaemonSettings,
  type DependencyContainer,
  type Engine,
  GraphDriverCapability,
  type GraphDriver,
  type SystemInfo,
  type VersionInfo,
  errorMessage,
  writeFileAtomic,
  API_VERSION,
  MIN_API_VERSION,
} from '@tsengine/core';
import type { Logger } from '@tsengine/core';
import { cgroupFacts, goArch, ipv4Forwarding, openFileDescriptors, osRelease, unameMachine } from './host.js';


/** Capability names whose providers `docker info` lists under Plugins. */
const PLUGIN_LISTS = { Volume: 'volumedriver', Network: 'networkdriver', Log: 'logdriver' } as const;

/** Jobs other plugins add later; called by name so this plugin builds before their contracts exist. */
type UntypedRun = (name: string, input: unknown) => Promise<unknown>;

export class SystemService {
  private engineId: string | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly settings: DaemonSettings,
    private readonly container: DependencyContainer,
    private readonly log: Logger,
  ) {}

  /** Docker keeps a random engine ID in its data root; so do we, created on first start. */
  async loadEngineId(): Promise<string> {
    if (this.engineId) return this.engineId;
    const file = join(this.settings.dataRoot, 'engine-id');
    try {
      const existing = (await readFile(file, 'utf8')).trim();
      if (existing) return (this.engineId = existing);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: errorMessage(err), file }, 'cannot read engine id; making a new one');
    }
    const id = randomUUID();
    await writeFileAtomic(file, id + '\n');
    return (this.engineId = id);
  }

  version(): VersionInfo {
    const details = {
      ApiVersion: API_VERSION,
      Arch: goArch(),
      BuildTime: '',
      Experimental: 'false',
      GitCommit: '',
      GoVersion: `node ${process.version}`,
      KernelVersion: os.release(),
      MinAPIVersion: MIN_API_VERSION,
      Os: 'linux',
    };
    return {
      Platform: { Name: 'tsengine' },
      Components: [{ Name: 'Engine', Version: this.settings.version, Details: details }, { Name: 'node', Version: process.version.replace(/^v/, ''), Details: { GitCommit: '' } }],
      Version: this.settings.version,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: '',
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: os.release(),
      BuildTime: '',
    };
  }

  async info(): Promise<SystemInfo> {
    const release = osRelease();
    const cgroups = cgroupFacts();
    const driver = await this.graphDriverFacts();
    const containers = await this.containerCounts();
    const execDrivers = this.providerNames('execdriver');
    const logDrivers = this.providers('logdriver');
    return {
      ID: await this.loadEngineId(),
      Containers: containers.total,
      ContainersRunning: containers.running,
      ContainersPaused: containers.paused,
      ContainersStopped: containers.total - containers.running - containers.paused,
      Images: await this.imageCount(),
      Driver: driver.name,
      DriverStatus: driver.status,
      Plugins: {
        Volume: this.providerNames(PLUGIN_LISTS.Volume),
        Network: this.providerNames(PLUGIN_LISTS.Network),
        Authorization: null,
        Log: this.providerNames(PLUGIN_LISTS.Log),
      },
      MemoryLimit: cgroups.memoryLimit,
      SwapLimit: cgroups.swapLimit,
      CpuCfsPeriod: cgroups.cpuCfsPeriod,
      CpuCfsQuota: cgroups.cpuCfsQuota,
      CPUShares: cgroups.cpuShares,
      CPUSet: cgroups.cpuSet,
      PidsLimit: cgroups.pidsLimit,
      IPv4Forwarding: ipv4Forwarding(),
      Debug: this.settings.logLevel === 'debug',
      NFd: openFileDescriptors(),
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: logDrivers?.selected ?? '',
      CgroupDriver: cgroups.driver,
      CgroupVersion: cgroups.version,
      NEventsListener: 0,
      KernelVersion: os.release(),
      OperatingSystem: release.prettyName,
      OSVersion: release.versionId,
      OSType: 'linux',
      Architecture: unameMachine(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        AllowNondistributableArtifactsCIDRs: [],
        AllowNondistributableArtifactsHostnames: [],
        InsecureRegistryCIDRs: ['127.0.0.0/8'],
        IndexConfigs: { 'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true } },
        Mirrors: [],
      },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      DockerRootDir: this.settings.dataRoot,
      HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
      HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
      NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: this.settings.version,
      Runtimes: Object.fromEntries(execDrivers.map((name) => [name, { path: `tsengine-${name}` }])),
      DefaultRuntime: this.providers('execdriver')?.selected ?? '',
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: false,
      Isolation: '',
      InitBinary: '',
      SecurityOptions: [],
      Warnings: null,
    };
  }

  private providers(capability: string): CapabilityProviders<unknown> | undefined {
    try {
      // The token exists only once some plugin provides the capability.
      return this.container.resolve<CapabilityProviders<unknown>>(Symbol.for(`tsengine.capability.${capability}.providers`));
    } catch {
      return undefined;
    }
  }

  private providerNames(capability: string): string[] {
    return this.providers(capability)?.names().sort() ?? [];
  }

  private async graphDriverFacts(): Promise<{ name: string; status: Array<[string, string]> }> {
    let driver: GraphDriver;
    try {
      const providers = this.container.resolve<CapabilityProviders<GraphDriver>>(GraphDriverCapability.providersToken);
      if (!providers.selected) return { name: '', status: [] };
      driver = providers.active();
    } catch {
      return { name: '', status: [] };
    }
    try {
      return { name: driver.name, status: await driver.status() };
    } catch (err) {
      this.log.warn({ err: errorMessage(err), driver: driver.name }, 'graph driver status failed');
      return { name: driver.name, status: [] };
    }
  }

  private get runUntyped(): UntypedRun {
    return (this.engine as unknown as { run: UntypedRun }).run.bind(this.engine);
  }

  private async imageCount(): Promise<number> {
    if (!this.engine.has('image.list')) return 0;
    try {
      const images = await this.runUntyped('image.list', { all: false });
      return Array.isArray(images) ? images.length : 0;
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'image.list failed while gathering info');
      return 0;
    }
  }

  private async containerCounts(): Promise<{ total: number; running: number; paused: number }> {
    const counts = { total: 0, running: 0, paused: 0 };
    if (!this.engine.has('container.list')) return counts;
    try {
      const list = await this.runUntyped('container.list', { all: true });
      if (!Array.isArray(list)) return counts;
      for (const c of list as Array<{ State?: unknown }>) {
        counts.total++;
        if (c.State === 'running') counts.running++;
        else if (c.State === 'paused') counts.paused++;
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'container.list failed while gathering info');
    }
    return counts;
  }
}
