import type { TargetColumn, TargetTable } from '../../src/interfaces/catalog.interfaces';

/** A column as the catalog describes it; by default nullable, without default, typed by its base type. */
export function column(name: string, baseType: string, options: Partial<TargetColumn> = {}): TargetColumn {
  return {
    name,
    sqlType: baseType,
    castType: baseType,
    baseType,
    isArray: false,
    typmod: -1,
    notNull: false,
    hasDefault: false,
    generatedAlways: false,
    enumLabels: null,
    ...options,
  };
}

/** A target table `schema.table` with the given columns and keys. */
export function targetTable(
  name: string,
  columns: TargetColumn[],
  keys: Partial<Pick<TargetTable, 'primaryKey' | 'uniqueKeys' | 'oneRowStatements'>> = {},
): TargetTable {
  const [schema, table] = name.split('.');
  return {
    name,
    database: 'main',
    schema,
    table,
    columns: new Map(columns.map((c) => [c.name, c])),
    primaryKey: null,
    uniqueKeys: [],
    oneRowStatements: false,
    copyIsInsert: true,
    foldsRowChanges: true,
    ...keys,
  };
}
