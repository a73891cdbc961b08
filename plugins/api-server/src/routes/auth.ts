import { EngineError, type RegistryAuth } from '@tsengine/core';
import type { RouteModule } from '../helpers.js';

/** POST /auth (docker login): checks credentials against a registry; answers {"Status":"Login Succeeded","IdentityToken":…}. */
export const authRoutes: RouteModule = ({ app, engine, reply }) => {
  app.post('/auth', (request, res) => {
    if (!engine.has('registry.login')) throw new EngineError('notimplemented', 'logging in to registries is not supported: no registry plugin is loaded');
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new EngineError('invalid', 'the request body must be a JSON object with username, password and serveraddress');
    const auth: RegistryAuth = {};
    for (const key of ['username', 'password', 'auth', 'identitytoken', 'registrytoken', 'serveraddress'] as const) {
      const field = (body as Record<string, unknown>)[key];
      if (field !== undefined && typeof field !== 'string') throw new EngineError('invalid', `${key} must be a string`);
      if (field) auth[key] = field as string;
    }
    return reply(request, res, 'registry.login', auth);
  });
};
