import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The foreign key from operations to clients ran one check per inserted operation (a third of a bulk ingest
 * INSERT). Clients are revoked, never deleted, so the database forbids deleting them instead, once per statement:
 * every client_id the service stores, taken from an authenticated client, keeps its client.
 */
export class ClientsNeverDeleted1764100000000 implements MigrationInterface {
  name = 'ClientsNeverDeleted1764100000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE FUNCTION batch.clients_are_revoked_not_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'batch.clients rows are revoked (revoked_at), never deleted: operations refer to them';
      END $$`);
    await db.query(
      `CREATE TRIGGER clients_never_deleted BEFORE DELETE OR TRUNCATE ON batch.clients FOR EACH STATEMENT EXECUTE FUNCTION batch.clients_are_revoked_not_deleted()`,
    );
    await db.query(`ALTER TABLE batch.operations DROP CONSTRAINT operations_client_id_fkey`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE batch.operations ADD CONSTRAINT operations_client_id_fkey FOREIGN KEY (client_id) REFERENCES batch.clients (id)`,
    );
    await db.query(`DROP TRIGGER clients_never_deleted ON batch.clients`);
    await db.query(`DROP FUNCTION batch.clients_are_revoked_not_deleted()`);
  }
}
