// `npm run start:dev`: the TypeScript compiler watches the sources and rebuilds dist/, and Node restarts the service
// whenever the build changes it.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
const build = ['-p', 'tsconfig.build.json'];
const nodeFlags = readFileSync(join(root, 'scripts', 'node-flags'), 'utf8')
  .trim()
  .split(/\s+/); // npm start's
if (spawnSync(process.execPath, [tsc, ...build], { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
const children = [
  spawn(process.execPath, [tsc, ...build, '--watch', '--preserveWatchOutput'], { cwd: root, stdio: 'inherit' }),
  spawn(process.execPath, ['--watch-path=dist/src', ...nodeFlags, 'dist/src/main.js'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' }, // npm start's
  }),
];
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => children.forEach((child) => child.kill(signal)));
