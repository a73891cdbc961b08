import { type ContainerInspect, type ContainerSummary, type MountPoint, type NetworkSettings, humanDuration } from '@tsengine/core';
import type { ContainerRecord } from './manager.js';

/** What inspect shows when no network service knows the container (created, stopped, or a minimal build). */
export function emptyNetworkSettings(): NetworkSettings {
  return { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: {}, IPAddress: '', IPPrefixLen: 0, Gateway: '', MacAddress: '' };
}

/** What inspect shows that only the running daemon knows. */
export interface RuntimeView {
  logPath: string;
  execIds: string[];
}

export function inspectView(record: ContainerRecord, network: NetworkSettings = emptyNetworkSettings(), mounts: MountPoint[] = [], runtime: RuntimeView = { logPath: '', execIds: [] }): ContainerInspect {
  const networkMode = typeof record.HostConfig.NetworkMode === 'string' && record.HostConfig.NetworkMode !== 'default' && record.HostConfig.NetworkMode !== '' ? record.HostConfig.NetworkMode : network.Networks['bridge'] ? 'bridge' : 'none';
  return {
    Id: record.Id,
    Created: record.Created,
    Path: record.Path,
    Args: record.Args,
    State: record.State,
    Image: record.Image,
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: runtime.logPath,
    Name: record.Name,
    RestartCount: record.RestartCount ?? 0,
    Driver: record.Driver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: runtime.execIds.length ? runtime.execIds : null,
    HostConfig: { ...record.HostConfig, NetworkMode: networkMode },
    GraphDriver: { Data: null, Name: record.Driver },
    Mounts: mounts,
    Config: record.Config,
    NetworkSettings: network,
  };
}

/** The `Status` column of docker ps. */
export function statusText(record: ContainerRecord, now = Date.now()): string {
  const state = record.State;
  if (state.Restarting) return `Restarting (${state.ExitCode}) ${humanDuration(now - Date.parse(state.FinishedAt))} ago`;
  if (state.Running) return `Up ${humanDuration(now - Date.parse(state.StartedAt))}${state.Paused ? ' (Paused)' : ''}`;
  if (state.Status === 'exited') return `Exited (${state.ExitCode}) ${humanDuration(now - Date.parse(state.FinishedAt))} ago`;
  return 'Created';
}

export function summaryView(record: ContainerRecord, network?: NetworkSettings, mounts?: MountPoint[]): ContainerSummary {
  const view = inspectView(record, network, mounts);
  return {
    Id: record.Id,
    Names: [record.Name],
    Image: String(record.Config.Image ?? record.Image),
    ImageID: record.Image,
    Command: [record.Path, ...record.Args].join(' '),
    Created: Math.floor(Date.parse(record.Created) / 1000),
    Ports: portsView(view.NetworkSettings),
    Labels: record.Config.Labels ?? {},
    State: record.State.Status,
    Status: statusText(record),
    HostConfig: { NetworkMode: String(view.HostConfig.NetworkMode) },
    NetworkSettings: { Networks: view.NetworkSettings.Networks },
    Mounts: view.Mounts,
  };
}

/** The Ports list of GET /containers/json, from inspect's port map. */
function portsView(settings: NetworkSettings): Array<{ PrivatePort: number; Type: string; IP?: string; PublicPort?: number }> {
  const ports: Array<{ PrivatePort: number; Type: string; IP?: string; PublicPort?: number }> = [];
  for (const [key, bindings] of Object.entries(settings.Ports)) {
    const [port, type = 'tcp'] = key.split('/');
    if (!bindings || bindings.length === 0) ports.push({ PrivatePort: Number(port), Type: type });
    else for (const b of bindings) ports.push({ IP: b.HostIp || '0.0.0.0', PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: type });
  }
  return ports;
}
