import type { TargetTable } from '../../interfaces/catalog.interfaces';

/**
 * Makes the stage of `table`'s inserts (batch.typed_stage, typed-inserts.sql) for its columns and their cast types as
 * the service's catalog read them, or an entry without one where a column's type cannot be kept typed: what a table of
 * another database needs, whose catalog the queue's database cannot read itself.
 */
export function makeTypedStage(db: { query(sql: string, params: unknown[]): Promise<unknown> }, table: TargetTable) {
  const columns = [...table.columns.values()];
  return db.query('SELECT batch.typed_stage($1, $2::text[], $3::text[])', [
    table.name,
    columns.map((c) => c.name),
    columns.map((c) => c.castType),
  ]);
}
