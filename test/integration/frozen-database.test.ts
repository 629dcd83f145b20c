import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { isConnectionError } from '../../src/services/storage/database-error';
import { NamedDatabases } from '../../src/services/storage/named-databases';
import { createTestApp, TestApp } from '../support/app-context';
import { POSTGRES_MISSING, PrivatePostgres, sleep, startPostgres } from '../support/private-services';

/**
 * A database of BATCH_DATABASES that stops answering without refusing (a private PostgreSQL frozen by SIGSTOP, its
 * connections left open): lookups in the service's own database do not wait for it, its own lookups are answered from
 * its tables as last read once its read is given up, which counts it down, and a copy's source there is refused as a
 * database that cannot be reached.
 */
describe(
  'the catalog of a database that stops answering (private PostgreSQL)',
  { skip: POSTGRES_MISSING ?? false },
  () => {
    let server: PrivatePostgres;
    let t: TestApp;

    before(async () => {
      server = await startPostgres();
      const billing = new Client({ host: '127.0.0.1', port: Number(server.env.DB_PORT), user: 'postgres' });
      await billing.connect();
      await billing.query(`CREATE TABLE invoices (id int PRIMARY KEY); CREATE TABLE archive (id int PRIMARY KEY)`);
      await billing.end();
      t = await createTestApp({
        BATCH_DATABASES: JSON.stringify({ billing: `postgres://postgres@127.0.0.1:${server.env.DB_PORT}/postgres` }),
        BATCH_CATALOG_TTL: '100',
      });
      await t.db.query(`CREATE TABLE events (id int PRIMARY KEY)`);
    });
    after(async () => {
      await server?.thaw().catch(() => undefined);
      await t?.close();
      await server?.destroy();
    });

    it("answers from the tables last read, and never holds up the service's own database", async () => {
      const catalog = t.get(CatalogService);
      assert.equal((await catalog.find('billing:invoices'))?.name, 'billing:public.invoices');
      await server.freeze();
      try {
        await sleep(200); // past the catalog's TTL: the next lookups read it again
        const answered: string[] = [];
        const billing = catalog.find('billing:invoices').then((table) => (answered.push('billing'), table));
        assert.equal((await catalog.find('events'))?.name, 'public.events');
        answered.push('main');
        assert.equal((await billing)?.name, 'billing:public.invoices', 'as last read');
        assert.deepEqual(answered, ['main', 'billing'], "the service's own database's lookup did not wait for it");
        assert.equal(t.get(NamedDatabases).get('billing')?.up, false, 'counted down');
        await assert.rejects(catalog.source('billing:archive'), (error) => isConnectionError(error));
      } finally {
        await server.thaw();
      }
    });
  },
);
