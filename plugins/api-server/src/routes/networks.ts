import { type EndpointSettings, EngineError, type NetworkCreateBody, type NetworkFilters } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, parseFilters } from '../helpers.js';

type Query = Record<string, string | string[] | undefined>;

function q(request: FastifyRequest, key: string): string | undefined {
  const value = ((request.query ?? {}) as Query)[key];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function id(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

function filters(request: FastifyRequest): NetworkFilters {
  return Object.fromEntries(parseFilters(q(request, 'filters')));
}

function body(request: FastifyRequest): Record<string, unknown> {
  const b = request.body;
  if (b === undefined || b === null || b === '') return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new EngineError('invalid', 'invalid JSON body: expected an object');
  return b as Record<string, unknown>;
}

export const networkRoutes: RouteModule = ({ app, run, reply }) => {
  app.get('/networks', (request, res) => reply(request, res, 'network.list', { filters: filters(request) }));

  app.get('/networks/:id', (request, res) => reply(request, res, 'network.inspect', { id: id(request) }));

  app.post('/networks/create', async (request, res) => {
    const created = await run(request, 'network.create', { body: body(request) as NetworkCreateBody });
    return res.code(201).type('application/json').send(JSON.stringify(created));
  });

  app.post('/networks/:id/connect', async (request, res) => {
    const b = body(request);
    if (typeof b.Container !== 'string' || b.Container === '') throw new EngineError('invalid', 'no container specified');
    await run(request, 'network.connect', { id: id(request), container: b.Container, endpointConfig: (b.EndpointConfig ?? null) as EndpointSettings | null });
    return res.code(200).send();
  });

  app.post('/networks/:id/disconnect', async (request, res) => {
    const b = body(request);
    if (typeof b.Container !== 'string' || b.Container === '') throw new EngineError('invalid', 'no container specified');
    await run(request, 'network.disconnect', { id: id(request), container: b.Container, force: b.Force === true });
    return res.code(200).send();
  });

  app.delete('/networks/:id', (request, res) => reply(request, res, 'network.remove', { id: id(request) }));

  app.post('/networks/prune', (request, res) => reply(request, res, 'network.prune', { filters: filters(request) }));
};
