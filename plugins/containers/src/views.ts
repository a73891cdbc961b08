import { type ContainerInspect, type ContainerSummary, humanDuration } from '@tsengine/core';
import type { ContainerRecord } from './manager.js';

export function inspectView(record: ContainerRecord): ContainerInspect {
  const networkMode = typeof record.HostConfig.NetworkMode === 'string' && record.HostConfig.NetworkMode !== 'default' ? record.HostConfig.NetworkMode : 'none';
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
    LogPath: '',
    Name: record.Name,
    RestartCount: 0,
    Driver: record.Driver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: { ...record.HostConfig, NetworkMode: networkMode },
    GraphDriver: { Data: null, Name: record.Driver },
    Mounts: [],
    Config: record.Config,
    NetworkSettings: { Networks: {}, Ports: {}, SandboxID: '', SandboxKey: '' },
  };
}

/** The `Status` column of docker ps. */
export function statusText(record: ContainerRecord, now = Date.now()): string {
  const state = record.State;
  if (state.Running) return `Up ${humanDuration(now - Date.parse(state.StartedAt))}`;
  if (state.Status === 'exited') return `Exited (${state.ExitCode}) ${humanDuration(now - Date.parse(state.FinishedAt))} ago`;
  return 'Created';
}

export function summaryView(record: ContainerRecord): ContainerSummary {
  const view = inspectView(record);
  return {
    Id: record.Id,
    Names: [record.Name],
    Image: String(record.Config.Image ?? record.Image),
    ImageID: record.Image,
    Command: [record.Path, ...record.Args].join(' '),
    Created: Math.floor(Date.parse(record.Created) / 1000),
    Ports: [],
    Labels: record.Config.Labels ?? {},
    State: record.State.Status,
    Status: statusText(record),
    HostConfig: { NetworkMode: String(view.HostConfig.NetworkMode) },
    NetworkSettings: { Networks: {} },
    Mounts: [],
  };
}
