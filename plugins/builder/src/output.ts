import { Writable } from 'node:stream';

/**
 * Docker's build stream: {"stream": text} lines, {"aux": …}, and an errorDetail line on failure.
 * In quiet mode the text is held back and only shown if the build fails (docker -q).
 */
export class BuildOutput {
  private held = '';
  /** Something reached the client: from now on failures are reported in the stream, not as HTTP errors. */
  started = false;

  constructor(
    private readonly out: Writable,
    readonly quiet: boolean,
  ) {
    // A client that went away makes writes fail; the job's signal ends the build, so the error itself is not news.
    out.on('error', () => undefined);
  }

  text(text: string): void {
    if (this.quiet) this.held += text;
    else this.line({ stream: text });
  }

  /** Where another job (a base image pull) writes its own JSON lines into the build stream; dropped in quiet mode. */
  progressStream(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        if (!this.quiet && !this.out.destroyed && !this.out.writableEnded) {
          this.started = true;
          this.out.write(chunk);
        }
        done();
      },
    });
  }

  aux(value: unknown): void {
    this.line({ aux: value });
  }

  /** The final ID line of quiet mode. */
  quietResult(id: string): void {
    if (this.quiet) this.line({ stream: `${id}\n` });
  }

  error(code: number, message: string): void {
    if (this.held) this.line({ stream: this.held });
    this.held = '';
    this.line({ errorDetail: { code, message }, error: message });
  }

  private line(value: unknown): void {
    if (this.out.destroyed || this.out.writableEnded) return;
    this.started = true;
    this.out.write(JSON.stringify(value) + '\n');
  }
}
