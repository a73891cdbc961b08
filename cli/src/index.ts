import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { ConnectionError, DaemonError } from './client/index.js';
import { commandModules } from './commands/index.js';
import { EmbeddedSession } from './embedded/index.js';
import { CliError, ExitCode, type RunCliOptions, createContext } from './context.js';
import { TemplateError } from './format/index.js';
import { TSENGINE_VERSION } from './version.js';

export { type CliContext, CliError, type CommandModule, ExitCode, type RunCliOptions, withHostOption } from './context.js';
export * from './client/index.js';
export * from './format/index.js';
export { DEFAULT_PLUGINS } from './daemon/defaults.js';
export { TSENGINE_VERSION, API_VERSION } from './version.js';

/**
 * Runs `tsengine` with process-style argv (node, script, …args) and resolves with the exit status.
 * Exit statuses follow docker: 0 ok, 1 for errors (daemon errors, unreachable daemon, unknown
 * commands), 125 for wrong flags or arguments.
 */
export async function runCli(argv: string[], options: RunCliOptions = {}): Promise<number> {
  const session = new EmbeddedSession(argv, options, options.stderr ?? process.stderr);
  const context = createContext({ ...options, clientFactory: session.clientFactory() });
  const program = new Command('tsengine');
  let commanderMessage = '';
  program
    .description('A Docker-compatible container engine')
    .version(TSENGINE_VERSION, '-v, --version', 'print the version and exit')
    .option('-H, --host <uri>', 'daemon socket to connect to')
    .option('--embedded', 'run the engine inside this command instead of a daemon (also the fallback, as root, when no daemon answers); its containers stop when the command ends')
    .option('--data-root <dir>', 'data root of an embedded engine (default /var/lib/tsengine)')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.stdout.write(text),
      writeErr: (text) => context.stderr.write(text),
      outputError: (text) => (commanderMessage = text.trim()),
    });
  for (const register of commandModules) register(program, context);

  let code: number;
  try {
    await program.parseAsync(argv);
    code = context.exitCode;
  } catch (err) {
    code = reportError(err, commanderMessage, argv, context.stderr);
  }
  return session.close(code);
}

function reportError(err: unknown, commanderMessage: string, argv: string[], stderr: NodeJS.WritableStream): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    if (err.code === 'commander.unknownCommand') {
      const name = argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
      stderr.write(`tsengine: '${name}' is not a tsengine command.\nSee 'tsengine --help'\n`);
      return ExitCode.error;
    }
    if (err.code === 'commander.executeSubCommandAsync' || err.exitCode === 0) return err.exitCode;
    const command = argv.slice(2).find((a) => !a.startsWith('-'));
    stderr.write(`${(commanderMessage || err.message).replace(/^error: /, '')}\nSee 'tsengine ${command ? command + ' ' : ''}--help'.\n`);
    return ExitCode.usage;
  }
  if (err instanceof DaemonError) {
    stderr.write(`Error response from daemon: ${err.message}\n`);
    return ExitCode.error;
  }
  if (err instanceof ConnectionError || err instanceof TemplateError) {
    stderr.write(`${err.message}\n`);
    return ExitCode.error;
  }
  if (err instanceof CliError) {
    stderr.write(`${err.message}\n`);
    return err.exitCode;
  }
  stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  return ExitCode.error;
}
