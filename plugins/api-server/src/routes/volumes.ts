import { EngineError, type VolumeCreateBody } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, parseFilters, queryBool } from '../helpers.js';

type Query = Record<string, string | string[] | undefined>;

function q(request: FastifyRequest, key: string): string | undefined {
  const value = ((request.query ?? {}) as Query)[key];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function name(request: FastifyRequest): string {
  return (request.params as { name: string }).name;
}

function filters(request: FastifyRequest): Record<string, string[]> {
  return Object.fromEntries(parseFilters(q(request, 'filters')));
}

function stringMap(value: unknown, field: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new EngineError('invalid', `invalid ${field}: expected an object of strings`);
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, String(v ?? '')]));
}

export const volumeRoutes: RouteModule = ({ app, run, reply }) => {
  app.post('/volumes/create', async (request, res) => {
    const raw = (request.body ?? {}) as Record<string, unknown>;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new EngineError('invalid', 'invalid JSON: expected a volume create object');
    const body: VolumeCreateBody = {};
    if (typeof raw.Name === 'string' && raw.Name !== '') body.Name = raw.Name;
    if (typeof raw.Driver === 'string' && raw.Driver !== '') body.Driver = raw.Driver;
    const opts = stringMap(raw.DriverOpts, 'DriverOpts');
    if (opts) body.DriverOpts = opts;
    const labels = stringMap(raw.Labels, 'Labels');
    if (labels) body.Labels = labels;
    const volume = await run(request, 'volume.create', body);
    return res.code(201).type('application/json').send(JSON.stringify(volume));
  });

  app.get('/volumes', (request, res) => reply(request, res, 'volume.list', { filters: filters(request) }));

  app.post('/volumes/prune', (request, res) => reply(request, res, 'volume.prune', { filters: filters(request) }));

  app.get('/volumes/:name', (request, res) => reply(request, res, 'volume.inspect', { name: name(request) }));

  app.delete('/volumes/:name', (request, res) => reply(request, res, 'volume.remove', { name: name(request), force: queryBool(q(request, 'force')) }));
};
