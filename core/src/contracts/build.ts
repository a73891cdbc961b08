/**
 * The build job (POST /build, `tsengine build`): job.stdin is the context tar (plain or gzip),
 * job.stdout receives Docker's JSON-lines build stream ({"stream"}, {"aux":{"ID"}}, and on failure
 * an {"errorDetail":{"code","message"},"error"} line).
 */
export interface BuildRequest {
  /** Path of the Dockerfile inside the context; default "Dockerfile". */
  dockerfile?: string;
  /** References to tag the result with (-t, repeatable). */
  tags?: string[];
  /** --build-arg values; null means "take the value from the daemon's environment" (unset here). */
  buildArgs?: Record<string, string | null>;
  /** --label values added to the final image. */
  labels?: Record<string, string>;
  noCache?: boolean;
  /** Only the image ID is streamed (-q). */
  quiet?: boolean;
  /** Stage to stop at (--target). */
  target?: string;
  /** "default", "none" or "host" for RUN steps; anything else is refused. */
  networkMode?: string;
}

export interface BuildResult {
  /** sha256:… of the built image; absent when the build failed (see `failure`). */
  id?: string;
  /** A failed step, already reported on job.stdout as an errorDetail line (code = RUN's exit code, else 1). */
  failure?: { code: number; message: string };
}

declare module '../kernel/job-map.js' {
  interface JobMap {
    'image.build': { in: BuildRequest; out: BuildResult };
  }
}
