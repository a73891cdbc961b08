#!/usr/bin/env node
// Bundles the kernel, the CLI and only the chosen plugins into one file (plus the native koffi
// binary for this platform, when a chosen plugin needs it), for small edge installs:
//   npm run build:embedded -- --plugins api-server,system,graphdriver-vfs [--outdir build/embedded]
'use strict';
const { mkdirSync, statSync, readdirSync, rmSync, existsSync } = require('node:fs');
const { join, relative } = require('node:path');
const { parseArgs } = require('node:util');
const esbuild = require('esbuild');

const root = join(__dirname, '..');
const { values } = parseArgs({
  options: {
    plugins: { type: 'string', default: 'api-server,system,images,graphdriver-overlay,graphdriver-vfs,exec-native' },
    outdir: { type: 'string', default: join(root, 'build', 'embedded') },
  },
});

const available = readdirSync(join(root, 'plugins')).filter((p) => existsSync(join(root, 'plugins', p, 'package.json')));
const chosen = values.plugins.split(',').map((p) => p.trim()).filter(Boolean);
const packages = chosen.map((short) => {
  const dir = join(root, 'plugins', short);
  const pkg = existsSync(join(dir, 'package.json')) ? require(join(dir, 'package.json')) : undefined;
  if (!pkg || !existsSync(join(dir, pkg.main))) {
    console.error(`unknown or unbuilt plugin "${short}" (plugins here: ${available.join(', ')}; run npm run build first)`);
    process.exit(1);
  }
  return pkg.name;
});

const outdir = values.outdir;
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const entry = `'use strict';
require('reflect-metadata');
const { runCli } = require('@tsengine/cli');
const plugin = (mod) => mod.default ?? mod.plugin ?? mod;
const builtins = new Map([
${packages.map((name) => `  [${JSON.stringify(name)}, plugin(require(${JSON.stringify(name)}))],`).join('\n')}
]);
runCli(process.argv, { builtins, defaultPlugins: [...builtins.keys()] }).then((code) => { process.exitCode = code; });
`;

const host = `${process.platform}_${process.arch}`;
// koffi requires every platform's binary by a static path; keep this platform's, drop the rest.
const koffiBinaries = {
  name: 'koffi-binaries',
  setup(build) {
    build.onResolve({ filter: /koffi\.node$/ }, (args) => (args.path.includes(`/${host}/`) ? undefined : { path: args.path, external: true }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  loader: { '.node': 'copy' },
  plugins: [koffiBinaries],
  // cosmiconfig loads TypeScript configs through an optional peer we do not ship.
  external: ['typescript'],
  logLevel: 'warning',
};
const builds = [esbuild.build({ ...common, stdin: { contents: entry, resolveDir: root, sourcefile: 'embedded-entry.js', loader: 'js' }, outfile: join(outdir, 'tsengine.js') })];
if (packages.includes('@tsengine/exec-native')) {
  // Each container's PID 1 starts as `node init.js`; the driver looks for it beside its own code.
  builds.push(esbuild.build({ ...common, entryPoints: [join(root, 'plugins/exec-native/dist/src/init.js')], outfile: join(outdir, 'init.js') }));
}
if (packages.includes('@tsengine/images')) {
  // Gzip layers are inflated on a worker thread, whose program the plugin looks for beside its own code.
  builds.push(esbuild.build({ ...common, entryPoints: [join(root, 'plugins/images/dist/src/gunzip-thread.js')], outfile: join(outdir, 'gunzip-thread.js') }));
}
Promise.all(builds)
  .then(() => {
    const files = readdirSync(outdir);
    let total = 0;
    for (const f of files) {
      const size = statSync(join(outdir, f)).size;
      total += size;
      console.log(`${relative(root, join(outdir, f)).padEnd(50)} ${(size / 1024).toFixed(1).padStart(9)} KiB`);
    }
    console.log(`${'total'.padEnd(50)} ${(total / 1024).toFixed(1).padStart(9)} KiB  (plugins: ${packages.join(', ')})`);
  })
  .catch(() => process.exit(1));
