import type { PullRequest, PullResult, PushRequest, PushResult } from '../capabilities/registry.js';

/** Registry jobs; job.stdout carries Docker's JSON progress lines (POST /images/create, POST /images/{name}/push). */
declare module '../kernel/job-map.js' {
  interface JobMap {
    'image.pull': { in: PullRequest; out: PullResult };
    'image.push': { in: PushRequest; out: PushResult };
  }
}

export {};
