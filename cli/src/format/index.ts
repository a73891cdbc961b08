export { bytesSize, humanDuration, humanSize, timeAgo } from './units.js';
export { alignTabs, formatKeyValues, formatTable } from './table.js';
export { TemplateError, renderTemplate } from './template.js';
