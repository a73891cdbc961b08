import { type BuildRequest, EngineError } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, queryBool } from '../helpers.js';

type Query = Record<string, string | string[] | undefined>;

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function many(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** buildargs / labels: a JSON object of strings (buildargs values may be null: "unset"). */
function jsonMap<T extends string | null>(raw: string | undefined, name: string, allowNull: boolean): Record<string, T> | undefined {
  if (raw === undefined || raw === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EngineError('invalid', `${name}: invalid JSON: ${raw}`);
  }
  if (parsed === null) return undefined;
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new EngineError('invalid', `${name} must be a JSON object`);
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!(typeof value === 'string' || (allowNull && value === null))) throw new EngineError('invalid', `${name}: the value of ${JSON.stringify(key)} must be a string`);
  }
  return parsed as Record<string, T>;
}

function buildRequest(request: FastifyRequest): BuildRequest {
  const q = (request.query ?? {}) as Query;
  const remote = one(q.remote);
  if (remote) throw new EngineError('notimplemented', 'building from a remote context (git or URL) is not supported: send the context as a tar body');
  const input: BuildRequest = {
    tags: many(q.t).filter((t) => t !== ''),
    noCache: queryBool(one(q.nocache)),
    quiet: queryBool(one(q.q)),
  };
  const dockerfile = one(q.dockerfile);
  if (dockerfile) input.dockerfile = dockerfile;
  const buildArgs = jsonMap<string | null>(one(q.buildargs), 'buildargs', true);
  if (buildArgs) input.buildArgs = buildArgs;
  const labels = jsonMap<string>(one(q.labels), 'labels', false);
  if (labels) input.labels = labels;
  const target = one(q.target);
  if (target) input.target = target;
  const network = one(q.networkmode);
  if (network) input.networkMode = network;
  // rm / forcerm: build containers are never kept, so both are always in effect.
  return input;
}

/** POST /build: the legacy builder API (the docker CLI's DOCKER_BUILDKIT=0 path); the body is the context tar, plain or gzip. */
export const buildRoutes: RouteModule = ({ app, stream }) => {
  app.post('/build', { config: { rawBody: true } }, (request, res) =>
    stream(request, res, 'image.build', buildRequest(request), { contentType: 'application/json', stdin: true }),
  );
};
