import type { RouteModule } from '../helpers.js';
import { systemRoutes } from './system.js';
import { networkRoutes } from './networks.js';
import { buildRoutes } from './build.js';
import { imageRoutes } from './images.js';
import { containerRoutes } from './containers.js';
import { execRoutes } from './exec.js';
import { eventRoutes } from './events.js';
import { volumeRoutes } from './volumes.js';
import { authRoutes } from './auth.js';
import { containerFileRoutes } from './container-files.js';

/** Every route area the Docker API serves; add a module here when adding src/routes/<area>.ts. */
export const routeModules: RouteModule[] = [systemRoutes, imageRoutes, containerRoutes, execRoutes, eventRoutes, volumeRoutes, containerFileRoutes, authRoutes, buildRoutes, networkRoutes];
