/**
 * The typed contract of every job: name → { in; out }.
 *
 * Docker 1.x passed a stringly-typed Env bag to every job, which is why the Engine/Job package was
 * removed (moby#12151). Here each job's input and output are checked at compile time: core declares
 * the engine's own jobs in contracts/, and a plugin adds its own by augmenting this interface:
 *
 *   declare module '@tsengine/core' { interface JobMap { 'hello.greet': { in: { who: string }; out: string } } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface JobMap {}

export type JobName = keyof JobMap & string;
export type JobInput<N extends JobName> = JobMap[N] extends { in: infer I } ? I : never;
export type JobOutput<N extends JobName> = JobMap[N] extends { out: infer O } ? O : never;

import type { EngineDescription } from './engine.js';

export interface JobMap {
  /** Lists jobs and plugins (with their state: loaded, skipped, failed and why). */
  'engine.describe': { in: Record<string, never>; out: EngineDescription };
}
