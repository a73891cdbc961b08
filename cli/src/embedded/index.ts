export { EmbeddedSession } from './session.js';
export { type EngineChoice, readEngineChoice } from './flags.js';
