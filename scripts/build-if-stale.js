// `npm start` runs this first: it compiles the service (tsc -p tsconfig.build.json) only when dist/ is missing or
// older than the sources, so that every later start runs the compiled service at once. An install without dev
// dependencies (no TypeScript) starts what was built before, and says so when that is older than the sources.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const built = join(root, 'dist', '.tsbuildinfo-build'); // written by every build of tsconfig.build.json
const sources = ['src', 'tsconfig.json', 'tsconfig.build.json'].map((path) => join(root, path));

/** The newest modification time under `path` (a file or a folder), 0 when it does not exist. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((latest, entry) => Math.max(latest, newest(join(path, entry))), stat.mtimeMs);
}

const builtAt = newest(built);
if (builtAt > 0 && sources.every((source) => newest(source) <= builtAt)) process.exit(0);

let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  if (existsSync(join(root, 'dist', 'src', 'main.js'))) {
    console.warn(
      'dist/ is older than src/, and TypeScript is not installed (no dev dependencies): starting what was built.',
    );
    process.exit(0);
  }
  console.error(
    'The service is not built and TypeScript is not installed: run `npm install` (with dev dependencies) first.',
  );
  process.exit(1);
}
console.log('Building the service (tsc -p tsconfig.build.json): it is missing or older than its sources …');
const { status } = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(status ?? 1);
