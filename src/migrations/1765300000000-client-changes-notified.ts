import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every change of a client (its key rotated, its grants or rate limit changed, revoked), made by the service or by
 * an operator's SQL, is notified on the channel `batch_clients_changed` as it commits: each service process keeps
 * the clients it authenticated while it listens there (ClientChanges), and forgets them on a notification.
 */
export class ClientChangesNotified1765300000000 implements MigrationInterface {
  name = 'ClientChangesNotified1765300000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE FUNCTION batch.notify_client_changes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('batch_clients_changed', '');
        RETURN NULL;
      END $$`);
    await db.query(
      `CREATE TRIGGER clients_changed AFTER UPDATE ON batch.clients FOR EACH STATEMENT EXECUTE FUNCTION batch.notify_client_changes()`,
    );
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TRIGGER clients_changed ON batch.clients`);
    await db.query(`DROP FUNCTION batch.notify_client_changes()`);
  }
}
