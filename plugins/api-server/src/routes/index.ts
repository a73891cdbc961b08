import type { RouteModule } from '../helpers.js';
import { systemRoutes } from './system.js';
import { imageRoutes } from './images.js';
import { containerRoutes } from './containers.js';

/** Every route area the Docker API serves; add a module here when adding src/routes/<area>.ts. */
export const routeModules: RouteModule[] = [systemRoutes, imageRoutes, containerRoutes];
