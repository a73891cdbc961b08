import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/** JSON lines on stderr; human-readable when stderr is a terminal. Synchronous, so nothing is lost at exit. */
export function createDaemonLogger(level: string, stderrIsTTY = Boolean(process.stderr.isTTY)): Logger {
  const stream = stderrIsTTY ? pretty({ destination: 2, sync: true, colorize: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' }) : pino.destination({ fd: 2, sync: true });
  return pino({ level, base: { pid: process.pid } }, stream);
}
