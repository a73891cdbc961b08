#!/usr/bin/env node
// Runs every compiled test file with Node's built-in runner: unit tests of each package, then
// (unless --unit) the integration suites in test/, which start real daemons and containers.
'use strict';
const { spawnSync } = require('node:child_process');
const { readdirSync, statSync, existsSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const unitOnly = process.argv.includes('--unit');
const only = process.argv.filter((a) => !a.startsWith('--')).slice(2);

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'fixtures') continue;
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const packages = ['core', 'cli', ...readdirSync(join(root, 'plugins')).map((p) => join('plugins', p))];
let files = packages.flatMap((p) => testFiles(join(root, p, 'dist', 'test')));
if (!unitOnly) files.push(...testFiles(join(root, 'test', 'dist')));
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files found: run npm run build first');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=300000', ...files], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
