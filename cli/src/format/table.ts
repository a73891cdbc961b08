/**
 * Column alignment like Go's text/tabwriter as the docker CLI uses it: cells separated by tabs,
 * consecutive lines with tabs form a block whose columns are as wide as their widest cell plus
 * `padding`, and at least `minWidth`. The last cell of a line is never padded.
 */
export function alignTabs(text: string, minWidth: number, padding: number): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let block: string[][] = [];
  const flush = () => {
    const widths: number[] = [];
    for (const cells of block) {
      cells.slice(0, -1).forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? minWidth, cell.length + padding)));
    }
    for (const cells of block) out.push(cells.map((cell, i) => (i < cells.length - 1 ? cell.padEnd(widths[i]!) : cell)).join(''));
    block = [];
  };
  for (const line of lines) {
    if (line.includes('\t')) block.push(line.split('\t'));
    else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join('\n');
}

/** A docker-style table (`docker ps`, `docker images`): a header row then rows, columns 3 spaces apart at least. */
export function formatTable(header: string[], rows: string[][]): string {
  const text = [header, ...rows].map((cells) => cells.join('\t')).join('\n');
  return alignTabs(text, 10, 3) + '\n';
}

/** Aligned "key: value" lines (`docker version`'s layout): tabwriter with minwidth 20 and padding 1. */
export function formatKeyValues(lines: string[]): string {
  return alignTabs(lines.join('\n'), 20, 1) + '\n';
}
