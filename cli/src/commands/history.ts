import type { ImageHistoryItem } from '@tsengine/core';
import { type Command, InvalidArgumentError } from 'commander';
import type { CliContext, CommandModule } from '../context.js';
import { formatTable, timeAgo, humanSize } from '../format/index.js';
import { checkArgs, clientFor, imageGroup, imagePath, parseFormat, renderRows, rfc3339, shortId } from './image-support.js';

interface HistoryOptions {
  human: boolean;
  trunc: boolean;
  quiet?: boolean;
  format?: string;
}

const HEADERS: Record<string, string> = {
  Comment: 'COMMENT',
  CreatedAt: 'CREATED AT',
  CreatedBy: 'CREATED BY',
  CreatedSince: 'CREATED',
  ID: 'IMAGE',
  Size: 'SIZE',
};

/** docker truncates CREATED BY to 45 characters, the last one an ellipsis. */
const CREATED_BY_WIDTH = 45;

export const historyCommand: CommandModule = (program, context) => {
  configure(program.command('history'), context);
  configure(imageGroup(program).command('history'), context);
};

/** `-H` is docker's --human here, so the host is only reachable as --host (or before the command). */
function configure(command: Command, context: CliContext): void {
  command
    .description('Show the history of an image')
    .usage('[OPTIONS] IMAGE')
    .argument('[IMAGE...]')
    .option('--host <uri>', 'daemon socket to connect to (unix:///path or tcp://host:port)')
    .option('-H, --human [bool]', 'print sizes and dates in human readable format (-H=false for raw values)', parseBool, true)
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .option('--format <format>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-style template")
    .action(async (args: string[], options: HistoryOptions, cmd: Command) => {
      checkArgs(cmd, args, 1, 1);
      const history = await clientFor(context, cmd).request<ImageHistoryItem[]>('GET', `/images/${imagePath(args[0]!)}/history`);
      context.stdout.write(formatHistory(history, options));
    });
}

function parseBool(value: string): boolean {
  const text = value.replace(/^=/, '').toLowerCase();
  if (['1', 't', 'true'].includes(text)) return true;
  if (['0', 'f', 'false'].includes(text)) return false;
  throw new InvalidArgumentError(`strconv.ParseBool: parsing "${value}": invalid syntax`);
}

function formatHistory(history: ImageHistoryItem[], options: HistoryOptions): string {
  const id = (item: ImageHistoryItem) => (item.Id === '<missing>' || !options.trunc ? item.Id : shortId(item.Id));
  if (options.quiet) return history.map((item) => `${id(item)}\n`).join('');
  const now = Date.now();
  const created = (item: ImageHistoryItem) => (options.human ? timeAgo(item.Created, now) : rfc3339(item.Created));
  const size = (item: ImageHistoryItem) => (options.human ? humanSize(item.Size, 3) : String(item.Size));
  const createdBy = (item: ImageHistoryItem) => {
    const text = (item.CreatedBy ?? '').replace(/\t/g, ' ');
    return options.trunc ? ellipsis(text, CREATED_BY_WIDTH) : text;
  };
  const format = parseFormat(options.format);
  if (format.template !== null) {
    const rows = history.map((item) => ({ Comment: item.Comment, CreatedAt: rfc3339(item.Created), CreatedBy: createdBy(item), CreatedSince: created(item), ID: id(item), Size: size(item) }));
    return renderRows({ ...format, template: format.template }, HEADERS, rows);
  }
  return formatTable(
    ['IMAGE', options.human ? 'CREATED' : 'CREATED AT', 'CREATED BY', 'SIZE', 'COMMENT'],
    history.map((item) => [id(item), created(item), createdBy(item), size(item), item.Comment ?? '']),
  );
}

/** docker's formatter.Ellipsis: at most `width` characters, the last an ellipsis when cut. */
function ellipsis(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : chars.slice(0, width - 1).join('') + '…';
}
