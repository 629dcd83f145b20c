import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { JOB_PATTERNS } from '../../src/interfaces/job.interfaces';
import { BATCH_PATTERNS, ERROR_CODES } from '../../src/interfaces/operation.interfaces';

const ROOT = join(__dirname, '..', '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const API = read('docs/api.md');

/** Every file under `path` (a folder or a file), as paths from the repository's root. */
function files(path: string): string[] {
  const full = join(ROOT, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((entry) => files(join(path, entry)));
}

/** `GET /api/jobs/executions/:id` and the like, from the controllers' decorators, in the order they are declared. */
function restRoutes(): string[] {
  const routes: string[] = [];
  for (const file of files('src/controllers').filter((f) => f.endsWith('.controller.ts'))) {
    let prefix = '';
    const decorators = /@(Controller|Get|Post|Put|Patch|Delete)\((?:'([^']*)')?\)/g;
    for (const [, decorator, path = ''] of read(file).matchAll(decorators)) {
      if (decorator === 'Controller') prefix = path;
      else routes.push(`${decorator.toUpperCase()} /${[prefix, path].filter(Boolean).join('/')}`);
    }
  }
  return routes;
}

describe('the API reference (docs/api.md)', () => {
  it('lists every REST endpoint the controllers declare', () => {
    const routes = restRoutes();
    assert.ok(routes.length > 20, `routes found: ${routes.join(', ')}`);
    for (const route of routes) {
      const quoted = new RegExp('`' + route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') + '[`?]');
      assert.match(API, quoted, `${route} is not in docs/api.md`);
    }
  });

  it('lists every RPC pattern with its data and response, and every error code', () => {
    for (const pattern of [...Object.values(BATCH_PATTERNS), ...Object.values(JOB_PATTERNS)])
      assert.match(API, new RegExp(`^\\| \`${pattern}\` +\\|`, 'm'), pattern);
    for (const code of ERROR_CODES) assert.match(API, new RegExp(`^\\| \`${code}\` +\\| \\d{3} `, 'm'), code);
    for (const name of ['operations.settled', 'job.finished', 'operations.settled.<client name>'])
      assert.ok(API.includes(`\`${name}\``), name);
  });
});

describe('the documentation, whole in the repository', () => {
  const documents = [
    'README.md',
    'ARCHITECTURE.md',
    ...files('docs'),
    ...files('src/client'),
    ...files('bench'),
  ].filter((f) => f.endsWith('.md'));

  it('links only to files of the repository (or to web addresses), and each link is there', () => {
    for (const document of documents) {
      for (const [, target] of read(document).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^(https?:|mailto:|#)/.test(target)) continue;
        const path = resolve(ROOT, dirname(document), target.split('#')[0]);
        assert.ok(!relative(ROOT, path).startsWith('..'), `${document} links outside the repository: ${target}`);
        assert.ok(existsSync(path), `${document} links to a missing ${target}`);
      }
    }
  });

  it('names no document kept outside the repository', () => {
    const outside = new RegExp(['CONTRACT', 'DESIGN'].map((name) => `${name}\\.md`).join('|'));
    const checked = [
      ...['src', 'test', 'docs', 'scripts', 'bench'].flatMap(files),
      'README.md',
      'ARCHITECTURE.md',
      '.env.example',
    ];
    for (const file of checked.filter((f) => /\.(ts|js|md|sql|json|example)$/.test(f)))
      assert.doesNotMatch(read(file), outside, file);
  });
});

describe("the client package's README", () => {
  const readme = read('src/client/README.md');
  /** The fields of an exported interface of a source file. */
  const fields = (file: string, name: string) => {
    const body = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(read(file))![1];
    return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map(([, field]) => field);
  };

  it('lists every option of the client, the consumers and importFile, by name', () => {
    for (const [file, name] of [
      ['src/client/batch-service.client.ts', 'BatchServiceClientOptions'],
      ['src/client/settled-events.consumer.ts', 'SettledEventsOptions'],
      ['src/client/import-file.ts', 'ImportParams'],
    ]) {
      const names = fields(file, name);
      assert.ok(names.length >= 5, `${name}: ${names.join(', ')}`);
      for (const field of names) assert.match(readme, new RegExp(`\\| \`${field}\` +\\|`), `${name}.${field}`);
    }
  });

  it("lists every public method of BatchServiceClient, and the command line's flags", () => {
    const source = read('src/client/batch-service.client.ts');
    const methods = [...source.matchAll(/^ {2}(?:async )?([a-z]\w*)(?:<\w+>)?\(/gm)]
      .map(([, method]) => method)
      .filter((method) => !['constructor', 'onModuleDestroy'].includes(method));
    assert.ok(methods.length >= 14, methods.join(', '));
    for (const method of methods) assert.ok(readme.includes(`\`${method}(`), method);
    for (const [, flag] of read('src/client/cli-args.ts').matchAll(/^ {2}'?([a-z][\w-]*)'?: \{ type:/gm))
      if (flag !== 'help') assert.ok(readme.includes(`\`--${flag}`), `--${flag}`);
  });
});
