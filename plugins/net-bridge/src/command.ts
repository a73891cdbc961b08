import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (${status ?? 'signal'}): ${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/** Runs a program (ip, iptables, nsenter) with optional stdin; rejects with its stderr when it fails. */
export function runCommand(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new CommandError(`${file} ${args.join(' ')}`, null, err.message)));
    child.on('close', (status) => (status === 0 ? resolve(stdout) : reject(new CommandError(`${file} ${args.join(' ')}`, status, stderr))));
    if (input !== undefined) child.stdin!.end(input);
  });
}
