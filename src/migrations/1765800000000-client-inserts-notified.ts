import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A client created (by the service, another instance's admin bootstrap, or an operator's SQL) is notified too, as its
 * changes are: processes keep the keys they found no client for, and forget them at each notification.
 */
export class ClientInsertsNotified1765800000000 implements MigrationInterface {
  name = 'ClientInsertsNotified1765800000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`DROP TRIGGER clients_changed ON batch.clients`);
    await db.query(
      `CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE ON batch.clients FOR EACH STATEMENT EXECUTE FUNCTION batch.notify_client_changes()`,
    );
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TRIGGER clients_changed ON batch.clients`);
    await db.query(
      `CREATE TRIGGER clients_changed AFTER UPDATE ON batch.clients FOR EACH STATEMENT EXECUTE FUNCTION batch.notify_client_changes()`,
    );
  }
}
