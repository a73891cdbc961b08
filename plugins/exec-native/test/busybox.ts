import { readFileSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';

/**
 * The repository's busybox helper lives in the test workspace, outside this package's rootDir, so it
 * is compiled here at load time instead of being copied.
 */
export function loadBusyboxHelper(): { makeBusyboxRootfs(dir: string): void } {
  const file = join(__dirname, '../../../../test/helpers/busybox.ts');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const output = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  const mod = new Module(file) as Module & { _compile(code: string, filename: string): void };
  mod.filename = file;
  mod._compile(output, file);
  return mod.exports as { makeBusyboxRootfs(dir: string): void };
}
