import { Option } from 'commander';
import type { CommandModule } from '../context.js';
import { DEFAULTS, DEFAULT_PLUGINS, LOG_LEVELS } from '../daemon/defaults.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export const daemonCommand: CommandModule = (program, context) => {
  program
    .command('daemon')
    .description('Run the tsengine daemon (serves the Docker Engine API)')
    .option('--plugins <file>', 'config file listing plugins and daemon settings (default: a "tsengine" config found from the working directory, else the built-in plugins)')
    .option('--data-root <dir>', `persistent state (default ${DEFAULTS.dataRoot})`)
    .option('--exec-root <dir>', `runtime state: sockets, pid file (default ${DEFAULTS.execRoot})`)
    .option('-H, --host <uri>', `address to listen on, repeatable: unix:///path or tcp://host:port (default ${DEFAULTS.host})`, collect)
    .addOption(new Option('--log-level <level>', `log level (default ${DEFAULTS.logLevel})`).choices(LOG_LEVELS))
    .option('--pidfile <file>', 'pid file (default <exec-root>/tsengine.pid)')
    .action(async (flags) => {
      // Loaded on demand: the kernel, pino and the plugin loader are not needed by client commands.
      const { runDaemon } = await import('../daemon/run.js');
      await runDaemon(flags, {
        builtins: context.options.builtins ?? new Map(),
        defaultPlugins: context.options.defaultPlugins ?? DEFAULT_PLUGINS,
      });
    });
};
