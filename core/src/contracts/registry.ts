import type { LoginResult, PullRequest, PullResult, PushRequest, PushResult, RegistryAuth } from '../capabilities/registry.js';

/** Registry jobs; job.stdout carries Docker's JSON progress lines (POST /images/create, POST /images/{name}/push). */
declare module '../kernel/job-map.js' {
  interface JobMap {
    'image.pull': { in: PullRequest; out: PullResult };
    'image.push': { in: PushRequest; out: PushResult };
    /** POST /auth: checks the credentials against the registry named by serveraddress (the Hub when empty). */
    'registry.login': { in: RegistryAuth; out: LoginResult };
  }
}

export {};
