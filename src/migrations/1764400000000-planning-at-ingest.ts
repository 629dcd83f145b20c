import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Values stay in the database on the apply path: each operation keeps what the planner needs (its shape and the rows
 * it may touch, computed when it is created: row-identity.ts), and statements read the values from the stored JSON,
 * arrays through batch.array_literal. An operation stored without them (before this, or by hand) is claimed with a
 * shape made from its JSON (batch.shape_of) and no identity: the shape's empty keys version makes the planner give it
 * a statement of its own.
 */
export class PlanningAtIngest1764400000000 implements MigrationInterface {
  name = 'PlanningAtIngest1764400000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.operations ADD COLUMN shape text, ADD COLUMN identity text`);
    // The shape of an operation stored without one (before this, or by hand), from its JSON; its keys version is empty.
    await db.query(`
      CREATE FUNCTION batch.shape_of(type text, row_values jsonb, row_key jsonb, conflict_key text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT json_build_array(
          type,
          coalesce((SELECT array_agg(k ORDER BY k COLLATE "C") FROM jsonb_object_keys(row_values) k), '{}'),
          CASE type WHEN 'insert' THEN NULL WHEN 'upsert' THEN conflict_key
                    ELSE (SELECT array_agg(k ORDER BY k COLLATE "C") FROM jsonb_object_keys(row_key) k) END,
          '')::text
      $$`);
    // A JSON array as a PostgreSQL array literal; nested arrays are further dimensions, except for json[] and jsonb[],
    // whose elements are JSON texts. JSON null (the array, or an element) is NULL.
    await db.query(`
      CREATE FUNCTION batch.array_literal(value jsonb, json_elements boolean) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
      BEGIN
        IF jsonb_typeof(value) <> 'array' THEN RETURN NULL; END IF;
        RETURN '{' || coalesce((
          SELECT string_agg(CASE WHEN jsonb_typeof(e) = 'null' THEN 'NULL'
                                 WHEN jsonb_typeof(e) = 'array' AND NOT json_elements THEN batch.array_literal(e, false)
                                 ELSE '"' || replace(replace(CASE WHEN json_elements THEN e::text ELSE e #>> '{}' END, '\\', '\\\\'), '"', '\\"') || '"'
                            END, ',' ORDER BY i)
            FROM jsonb_array_elements(value) WITH ORDINALITY AS a(e, i)), '') || '}';
      END $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION batch.array_literal(jsonb, boolean)`);
    await db.query(`DROP FUNCTION batch.shape_of(text, jsonb, jsonb, text[])`);
    await db.query(`ALTER TABLE batch.operations DROP COLUMN shape, DROP COLUMN identity`);
  }
}
