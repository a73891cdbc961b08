import type { ImageSummary } from '@tsengine/core';
import type { Command } from 'commander';
import type { CliContext, CommandModule } from '../context.js';
import { formatTable, timeAgo, humanSize } from '../format/index.js';
import { checkArgs, clientFor, collectFilter, filtersJson, goTimeString, imageGroup, parseFormat, renderRows, shortId } from './image-support.js';
import { withHostOption } from '../context.js';

interface ListOptions {
  all?: boolean;
  quiet?: boolean;
  digests?: boolean;
  trunc: boolean;
  filter?: string[];
  format?: string;
}

/** One row of `docker images`: an image under one repository and tag (or digest). */
interface ImageRow {
  image: ImageSummary;
  repository: string;
  tag: string;
  digest: string;
}

/** `--format` fields, named and rendered like docker's image formatter. */
const HEADERS: Record<string, string> = {
  Containers: 'CONTAINERS',
  CreatedAt: 'CREATED AT',
  CreatedSince: 'CREATED',
  Digest: 'DIGEST',
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  SharedSize: 'SHARED SIZE',
  Size: 'SIZE',
  Tag: 'TAG',
  UniqueSize: 'UNIQUE SIZE',
  VirtualSize: 'VIRTUAL SIZE',
};

export const imagesCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('images')), context);
  configure(withHostOption(imageGroup(program).command('ls').alias('list')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('List images')
    .usage('[OPTIONS] [REPOSITORY[:TAG]]')
    .argument('[REPOSITORY[:TAG]...]', 'only images matching REPOSITORY[:TAG]')
    .option('-a, --all', 'show all images (default hides intermediate images)')
    .option('--digests', 'show digests')
    .option('-f, --filter <filter>', 'filter output based on conditions provided (reference=, dangling=, label=, before=, since=)', collectFilter)
    .option('--format <format>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-style template")
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs')
    .action(async (references: string[], options: ListOptions, cmd: Command) => {
      checkArgs(cmd, references, 0, 1);
      const filters = [...(options.filter ?? [])];
      if (references[0]) filters.push(`reference=${references[0]}`);
      const images = await clientFor(context, cmd).request<ImageSummary[]>('GET', '/images/json', {
        query: { all: options.all || undefined, digests: options.digests || undefined, filters: filtersJson(filters) },
      });
      context.stdout.write(formatImages(images, options));
    });
}

function formatImages(images: ImageSummary[], options: ListOptions): string {
  const rows = images.flatMap((image) => rowsOf(image, options.digests === true));
  const id = (row: ImageRow) => (options.trunc ? shortId(row.image.Id) : row.image.Id);
  if (options.quiet) return rows.map((row) => `${id(row)}\n`).join('');
  const format = parseFormat(options.format);
  if (format.template !== null) return renderRows({ ...format, template: format.template }, HEADERS, rows.map((row) => fields(row, id(row))));
  const now = Date.now();
  const header = options.digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  return formatTable(
    header,
    rows.map((row) => {
      const cells = [row.repository, row.tag, id(row), row.image.Created ? timeAgo(row.image.Created, now) : 'N/A', humanSize(row.image.Size, 3)];
      if (options.digests) cells.splice(2, 0, row.digest);
      return cells;
    }),
  );
}

/** The fields docker's `{{json .}}` prints for an image row, in its (alphabetical) order. */
function fields(row: ImageRow, id: string): Record<string, string> {
  const { image } = row;
  const unknown = (n: number) => n === -1 || n === undefined;
  return {
    Containers: unknown(image.Containers) ? 'N/A' : String(image.Containers),
    CreatedAt: goTimeString(image.Created),
    CreatedSince: timeAgo(image.Created),
    Digest: row.digest,
    ID: id,
    Repository: row.repository,
    SharedSize: unknown(image.SharedSize) ? 'N/A' : humanSize(image.SharedSize, 3),
    Size: humanSize(image.Size, 3),
    Tag: row.tag,
    UniqueSize: unknown(image.SharedSize) ? 'N/A' : humanSize(image.Size - image.SharedSize, 3),
    VirtualSize: humanSize(image.VirtualSize ?? image.Size, 4),
  };
}

/**
 * Docker's rows for one image: `<none>` everywhere for a dangling image, else one row per
 * repository and tag (times each digest of that repository with --digests), then rows for
 * repositories that only have digests.
 */
function rowsOf(image: ImageSummary, showDigests: boolean): ImageRow[] {
  const repoTags = (image.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  const repoDigests = (image.RepoDigests ?? []).filter((d) => d !== '<none>@<none>');
  if (repoTags.length === 0 && repoDigests.length === 0) return [{ image, repository: '<none>', tag: '<none>', digest: '<none>' }];

  const tagsByRepo = new Map<string, string[]>();
  for (const ref of repoTags) {
    const colon = ref.lastIndexOf(':');
    if (colon <= ref.lastIndexOf('/')) continue;
    const repo = ref.slice(0, colon);
    tagsByRepo.set(repo, [...(tagsByRepo.get(repo) ?? []), ref.slice(colon + 1)]);
  }
  const digestsByRepo = new Map<string, string[]>();
  for (const ref of repoDigests) {
    const at = ref.indexOf('@');
    if (at === -1) continue;
    const repo = ref.slice(0, at);
    digestsByRepo.set(repo, [...(digestsByRepo.get(repo) ?? []), ref.slice(at + 1)]);
  }

  const rows: ImageRow[] = [];
  for (const [repository, tags] of tagsByRepo) {
    const digests = showDigests ? (digestsByRepo.get(repository) ?? []) : [];
    digestsByRepo.delete(repository);
    for (const tag of tags) {
      if (digests.length === 0) rows.push({ image, repository, tag, digest: '<none>' });
      for (const digest of digests) rows.push({ image, repository, tag, digest });
    }
  }
  for (const [repository, digests] of digestsByRepo) {
    if (showDigests) for (const digest of digests) rows.push({ image, repository, tag: '<none>', digest });
    else rows.push({ image, repository, tag: '<none>', digest: '' });
  }
  return rows;
}
