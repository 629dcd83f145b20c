// `npm run pack:client`: the package callers install, batch-service-client, built from src/client (and the contract
// types and AMQP settings it imports) into build/client-package, then packed there as a tarball. It brings what a
// caller needs and nothing of the server. Prints the tarball's path.
'use strict';
const { execFileSync } = require('node:child_process');
const { copyFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const out = join(root, 'build', 'client-package');
rmSync(out, { recursive: true, force: true });
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.client.json'], { cwd: root, stdio: 'inherit' });
for (const file of ['package.json', 'README.md']) copyFileSync(join(root, 'src', 'client', file), join(out, file));
const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', join(root, 'build')], { cwd: out });
console.log(join(root, 'build', JSON.parse(packed.toString())[0].filename));
