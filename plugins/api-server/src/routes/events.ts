import { EngineError, type EventFilter } from '@tsengine/core';
import type { RouteModule } from '../helpers.js';
import { parseFilters } from '../helpers.js';
import { timeParam } from './containers.js';

const FILTER_KEYS = new Set(['type', 'container', 'image', 'event', 'label', 'network', 'volume', 'daemon', 'plugin', 'scope', 'node', 'service', 'secret', 'config']);

/** GET /events: JSON lines, headers sent at once; the stream ends by itself at `until`. */
export const eventRoutes: RouteModule = ({ app, stream }) => {
  app.get('/events', (request, res) => {
    const query = (request.query ?? {}) as Record<string, string | undefined>;
    const filters = parseFilters(query.filters);
    for (const key of filters.keys()) if (!FILTER_KEYS.has(key)) throw new EngineError('invalid', `invalid filter '${key}'`);
    const filter: EventFilter = {};
    for (const key of ['type', 'container', 'image', 'event', 'label'] as const) {
      const values = filters.get(key);
      if (values?.length) filter[key] = values;
    }
    const since = timeParam(query.since, 'since');
    const until = timeParam(query.until, 'until');
    return stream(request, res, 'system.events', { filter, ...(since !== undefined ? { since } : {}), ...(until ? { until } : {}) }, { contentType: 'application/json', immediate: true });
  });
};
