/** The global options that choose an engine, read from process-style argv before commander runs. */
export interface EngineChoice {
  /** `--embedded`: always run an engine inside this process. */
  embedded: boolean;
  /** `--data-root DIR` for the embedded engine. */
  dataRoot: string | undefined;
  /** `-H/--host` given before the command (DOCKER_HOST is checked by the session). */
  host: string | undefined;
  /** The command word (`run`, `image`, …), if any. */
  command: string | undefined;
}

const GLOBAL_WITH_VALUE = new Set(['-H', '--host', '--data-root']);

/** Scans the global options, which come before the command word (the program uses positional options). */
export function readEngineChoice(argv: string[]): EngineChoice {
  const choice: EngineChoice = { embedded: false, dataRoot: undefined, host: undefined, command: undefined };
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (!arg.startsWith('-')) {
      choice.command = arg;
      break;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    let value: string | undefined;
    if (GLOBAL_WITH_VALUE.has(name)) value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    else if (name.startsWith('-H') && !name.startsWith('--')) value = arg.slice(2);
    if (name === '--embedded') choice.embedded = true;
    else if (name === '--data-root') choice.dataRoot = value;
    else if (name === '-H' || name === '--host' || (name.startsWith('-H') && !name.startsWith('--'))) choice.host = value;
  }
  return choice;
}
