import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, isTerminal, readLine, stdinOf } from './image-support.js';

/** The key docker's config.json uses for Docker Hub. */
export const HUB_SERVER = 'https://index.docker.io/v1/';
const HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/']);

interface AuthEntry {
  auth?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  [key: string]: unknown;
}

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json (docker's rule). */
export function configPath(env: NodeJS.ProcessEnv): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json');
}

async function readConfig(path: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`reading ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as DockerConfig;
  } catch (err) {
    throw new CliError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Written through a temp file and a rename, mode 0600: the file holds credentials. */
async function writeConfig(path: string, config: DockerConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(config, null, '\t') + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/** A registry domain as config.json keys it: the Hub's legacy URL, else host[:port] without scheme or path. */
export function serverKey(server: string | undefined): string {
  if (!server) return HUB_SERVER;
  if (HUB_NAMES.has(server)) return HUB_SERVER;
  const host = server.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return HUB_NAMES.has(host) ? HUB_SERVER : host;
}

/** The registry domain of an image reference (docker.io when the first part is no host). */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return HUB_SERVER;
  const first = image.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? serverKey(first) : HUB_SERVER;
}

/** The X-Registry-Auth header for a registry from config.json ("e30=", i.e. {}, when none is stored), as the docker CLI sends it. */
export async function registryAuthHeader(env: NodeJS.ProcessEnv, server: string): Promise<string> {
  const config = await readConfig(configPath(env));
  const entry = config.auths?.[server];
  const auth: Record<string, string> = {};
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      auth.username = decoded.slice(0, colon);
      auth.password = decoded.slice(colon + 1);
    }
  }
  if (entry?.identitytoken) auth.identitytoken = entry.identitytoken;
  if (Object.keys(auth).length) auth.serveraddress = server;
  return Buffer.from(JSON.stringify(auth)).toString('base64url') || 'e30=';
}

interface LoginOptions {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

async function readAllText(input: Readable): Promise<string> {
  let text = '';
  for await (const chunk of input) text += chunk.toString();
  return text;
}

async function prompt(stdin: Readable, out: Writable, question: string): Promise<string> {
  out.write(question);
  return (await readLine(stdin)).trim();
}

export const loginCommand: CommandModule = (program, context) => {
  withHostOption(program.command('login'))
    .description('Log in to a registry')
    .usage('[OPTIONS] [SERVER]')
    .argument('[SERVER]', 'registry host[:port]; Docker Hub when omitted')
    .option('-u, --username <username>', 'username')
    .option('-p, --password <password>', 'password or personal access token')
    .option('--password-stdin', 'take the password from stdin')
    .action(async (server: string | undefined, options: LoginOptions, cmd: Command) => {
      checkArgs(cmd, cmd.args, 0, 1);
      await login(context, cmd, server, options);
    });

  withHostOption(program.command('logout'))
    .description('Log out from a registry')
    .usage('[SERVER]')
    .argument('[SERVER]', 'registry host[:port]; Docker Hub when omitted')
    .action(async (server: string | undefined, _options: unknown, cmd: Command) => {
      checkArgs(cmd, cmd.args, 0, 1);
      const key = serverKey(server);
      const path = configPath(context.env);
      const config = await readConfig(path);
      context.stdout.write(`Removing login credentials for ${key === HUB_SERVER ? 'https://index.docker.io/v1/' : key}\n`);
      if (config.auths && key in config.auths) {
        delete config.auths[key];
        await writeConfig(path, config);
      }
    });
};

async function login(context: CliContext, cmd: Command, server: string | undefined, options: LoginOptions): Promise<void> {
  const stdin = stdinOf(context);
  if (options.password !== undefined && options.passwordStdin) throw new CliError('--password and --password-stdin are mutually exclusive', 125);
  if (options.passwordStdin && !options.username) throw new CliError('Must provide --username with --password-stdin', 125);
  if (options.password !== undefined) context.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  let { username, password } = options;
  if (options.passwordStdin) password = (await readAllText(stdin)).replace(/\r?\n$/, '');
  if (username === undefined || password === undefined) {
    if (!isTerminal(stdin)) throw new CliError('Cannot perform an interactive login from a non TTY device');
    username ??= await prompt(stdin, context.stdout, 'Username: ');
    password ??= await prompt(stdin, context.stdout, 'Password: ');
  }
  if (!username) throw new CliError('Username is required');
  if (!password) throw new CliError('Password is required');
  const key = serverKey(server);
  const answer = await clientFor(context, cmd).request<{ Status?: string; IdentityToken?: string }>('POST', '/auth', { body: { username, password, serveraddress: key } });
  const path = configPath(context.env);
  const config = await readConfig(path);
  config.auths ??= {};
  config.auths[key] = answer.IdentityToken ? { auth: Buffer.from(`${username}:`).toString('base64'), identitytoken: answer.IdentityToken } : { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeConfig(path, config);
  context.stderr.write(`WARNING! Your credentials are stored unencrypted in '${path}'.\n`);
  context.stdout.write(`${answer.Status ?? 'Login Succeeded'}\n`);
}
