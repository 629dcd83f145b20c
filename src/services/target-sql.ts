import type { StatementPlan } from '../interfaces/chunk.interfaces';
import type { TargetColumn, TargetTable } from './catalog.service';
import { toSqlText } from './column-value';
import { quoteIdent } from './database';

/**
 * The SQL that applies a statement plan to a target table. Each column travels as one text[] parameter, so
 * the parameter count stays constant whatever the number of rows; identifiers come only from the catalog.
 */
export interface TargetStatement {
  sql: string;
  params: (string | null)[][];
}

export function qualifiedName(table: TargetTable): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;
}

/** `INSERT … SELECT … FROM unnest(…) WITH ORDINALITY ORDER BY ord`: rows go in in plan order. */
export function insertStatement(table: TargetTable, plan: StatementPlan): TargetStatement {
  const columns = plan.columns.map((name) => column(table, name));
  const aliases = columns.map((_, i) => `c${i + 1}`);
  const sql =
    `INSERT INTO ${qualifiedName(table)} (${columns.map((c) => quoteIdent(c.name)).join(', ')}) ` +
    `SELECT ${columns.map((c, i) => `v.${aliases[i]}::${c.castType}`).join(', ')} ` +
    `FROM unnest(${columns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) WITH ORDINALITY AS v(${aliases.join(', ')}, ord) ` +
    `ORDER BY v.ord`;
  const params = columns.map((c) => plan.operations.map((op) => toSqlText(c, op.values?.[c.name])));
  return { sql, params };
}

function column(table: TargetTable, name: string): TargetColumn {
  const found = table.columns.get(name);
  // A column dropped since the operation was created: let the database name the error.
  return found ?? { name, sqlType: 'text', castType: 'text', baseType: 'text', isArray: false, typmod: -1, notNull: false, hasDefault: false, generatedAlways: false, enumLabels: null };
}
