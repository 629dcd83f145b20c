#!/usr/bin/env node
// `npx batch-service …` in this repository: the client package's command line (src/client/cli.ts) as compiled into
// dist/, compiled first when dist/ is missing or older than the sources (as `npm start` does), with what the build
// says on stderr so that stdout stays the command's. In a project that installed the client package, `npx
// batch-service` runs the package's own copy instead.
'use strict';
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const built = spawnSync(process.execPath, [join(__dirname, 'build-if-stale.js')], {
  cwd: root,
  stdio: ['ignore', process.stderr, process.stderr],
});
if (built.status !== 0) process.exit(built.status ?? 1);
require(join(root, 'dist', 'src', 'client', 'cli.js'));
