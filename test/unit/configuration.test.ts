import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';

const ROOT = join(__dirname, '..', '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/** The table of docs/configuration.md: each variable with its default (null when it is unset by default). */
function documentedTable(): Map<string, string | null> {
  const section = read('docs/configuration.md');
  const rows = new Map<string, string | null>();
  for (const [, name, fallback] of section.matchAll(/^\| `([A-Z][A-Z0-9_]+)` +\| ([^|]*?) +\|/gm))
    rows.set(name, /^`[^`]*`$/.test(fallback) ? fallback.slice(1, -1) : null);
  return rows;
}

/** .env.example: each variable with its value, null when it is commented out (unset). */
function envExample(): Map<string, string | null> {
  const variables = new Map<string, string | null>();
  for (const [, commented, name, value] of read('.env.example').matchAll(/^(# )?([A-Z][A-Z0-9_]+)=(.*)$/gm))
    variables.set(name, commented ? null : value);
  return variables;
}

/** The variables the configuration loader reads, from its source (every name it hands to a reader, or reads). */
function loaderVariables(): Set<string> {
  const source = read('src/config/app-config.ts');
  return new Set([...source.matchAll(/(?:env, '|env\.)([A-Z][A-Z0-9_]+)/g)].map((match) => match[1]));
}

describe('the configuration, written in three places', () => {
  it('names the same variables in docs/configuration.md, .env.example and the loader', () => {
    const loader = [...loaderVariables()].sort();
    assert.deepEqual([...documentedTable().keys()].sort(), loader, 'docs/configuration.md');
    assert.deepEqual([...envExample().keys()].sort(), loader, '.env.example');
  });

  it('gives the same defaults: docs/configuration.md as .env.example, and .env.example as the loader', () => {
    const example = envExample();
    for (const [name, fallback] of documentedTable()) assert.equal(fallback, example.get(name), name);
    const set = Object.fromEntries([...example].filter(([, value]) => value !== null)) as Record<string, string>;
    assert.deepEqual(loadConfig(set), loadConfig({}), '.env.example sets every variable to its default');
  });
});
