import fc from 'fast-check';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { TargetColumn } from '../../src/interfaces/catalog.interfaces';
import { doubtfulRecords, recordShape } from '../../src/services/imports/doubtful-records';
import { dbClientConfig } from '../support/shared-services';

/** A column as the catalog describes it, for the types the screen knows (and one it does not). */
function column(castType: string, typmod = -1, isArray = false): TargetColumn {
  return {
    name: 'v',
    sqlType: castType,
    castType,
    baseType: castType,
    isArray,
    typmod,
    notNull: false,
    hasDefault: false,
    generatedAlways: false,
  } as TargetColumn;
}

const CSV: { delimiter: string; quote: string; nullText: string | null } = {
  delimiter: ',',
  quote: '"',
  nullText: null,
};
const doubtful = (lines: string[], columns: TargetColumn[], options = CSV) => {
  const data = Buffer.from(lines.map((line) => `${line}\n`).join(''));
  const bounds = [0];
  for (const line of lines) bounds.push(bounds[bounds.length - 1] + Buffer.byteLength(line) + 1);
  return doubtfulRecords(data, bounds, 0, recordShape(columns, options));
};

describe('records whose text the target takes for certain (doubtful-records.ts)', () => {
  const three = [column('integer'), column('character varying', 6 + 4), column('date')];

  it('reads quoted fields, doubled quotes and NULL; a field missing or one too many, an open quote are doubtful', () => {
    const lines = [
      '1,abc,2026-01-31',
      '2,"a,""b",',
      '3,,2026-02-28',
      '4,abc',
      '5,abc,2026-01-01,',
      '6,"abc"x,2026-01-01',
    ];
    assert.deepEqual(doubtful(lines, three), [3, 4, 5]);
    assert.deepEqual(doubtful(['1,"a\nb",2026-01-01\r'], three), []); // a quoted newline, a CRLF line end
    assert.deepEqual(doubtful(['"7","abc","2026-01-01"', '"7""",abc,', '"7,abc,'], three), [1, 2]);
  });

  it('holds every value it cannot vouch for: out of range, too long, not a date, a type it does not know', () => {
    const lines = ['1234567890,abc,2026-01-31', '1,abcdefg,2026-01-31', '1,abc,2026-02-29', '1, 1,2026-01-01', 'x,,'];
    assert.deepEqual(doubtful(lines, three), [0, 1, 2, 4]);
    assert.deepEqual(doubtful(['1'], [column('jsonb')]), [0]);
    assert.deepEqual(doubtful(['{1}'], [column('integer', -1, true)]), [0]);
  });

  it('takes a NULL marker, and the empty field then as an empty text', () => {
    const options = { ...CSV, nullText: 'NULL' };
    assert.deepEqual(doubtful(['NULL,,NULL', ',abc,2026-01-01'], three, options), [1]);
  });
});

/**
 * The screen's promise against PostgreSQL itself: whatever it vouches for, COPY takes. Random fields near each type's
 * edges (digits, signs, points, dates and times with any numbers in them, quotes) are screened as one-column records
 * of each type, and the records vouched for are copied together into a column of that type: one refusal fails it.
 */
describe('the screen vouches only for what COPY takes (property, real PostgreSQL)', () => {
  let db: Client;
  before(async () => {
    db = new Client(dbClientConfig('postgres'));
    await db.connect();
  });
  after(() => db.end());

  const digits = (most: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 0, maxLength: most });
  const two = fc.integer({ min: 0, max: 99 }).map((n) => String(n).padStart(2, '0'));
  const date = fc
    .tuple(fc.integer({ min: 0, max: 10000 }), two, two)
    .map(([y, m, d]) => `${String(y).padStart(4, '0')}-${m}-${d}`);
  const field = fc.oneof(
    fc.tuple(fc.constantFrom('', '+', '-'), digits(20), fc.constantFrom('', '.'), digits(20)).map((p) => p.join('')),
    fc
      .tuple(
        date,
        fc.constantFrom('T', ' ', 'x'),
        two,
        two,
        two,
        fc.constantFrom('', '.5', '.1234567', 'Z', '+14', '-15:30', '+02:60'),
      )
      .map(([d, t, h, m, s, zone]) => `${d}${t}${h}:${m}:${s}${zone}`),
    date,
    fc.constantFrom('t', 'true', 'yes', 'of', 'TRUE', 'on', '0', '2', ' 1', '', '"x"', '"a""b"', 'a"b', '\\N'),
    fc.uuid(),
    fc.string({ maxLength: 8 }),
  );
  const types: [string, TargetColumn][] = [
    ['smallint', column('smallint')],
    ['integer', column('integer')],
    ['bigint', column('bigint')],
    ['numeric(6,2)', column('numeric', ((6 << 16) | 2) + 4)],
    ['numeric', column('numeric')],
    ['real', column('real')],
    ['double precision', column('double precision')],
    ['text', column('text')],
    ['varchar(4)', column('character varying', 4 + 4)],
    ['char(3)', column('bpchar', 3 + 4)],
    ['boolean', column('boolean')],
    ['date', column('date')],
    ['timestamp', column('timestamp without time zone')],
    ['timestamptz', column('timestamp with time zone')],
    ['uuid', column('uuid')],
  ];

  it('COPY takes every record it vouches for, of every type it knows', async () => {
    let vouchedFor = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(field, { minLength: 1, maxLength: 40 }), async (fields) => {
        const lines = fields.filter((f) => !/[\n\r]/.test(f));
        for (const [sqlType, described] of types) {
          const held = new Set(doubtful(lines, [described]));
          const vouched = lines.filter((_, i) => !held.has(i));
          vouchedFor += vouched.length;
          if (vouched.length === 0) continue;
          await db.query(`BEGIN; CREATE TEMP TABLE screened (v ${sqlType}) ON COMMIT DROP`);
          try {
            await copy(db, vouched.map((line) => `${line}\n`).join(''));
          } catch (error) {
            assert.fail(`${sqlType}: vouched for ${JSON.stringify(vouched)}, COPY says ${(error as Error).message}`);
          } finally {
            await db.query('ROLLBACK');
          }
        }
      }),
      { numRuns: 150, seed: 20261126 },
    );
    assert.ok(vouchedFor > 1000, `vouched for ${vouchedFor} values only`);
  });
});

function copy(db: Client, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = db.query(copyFrom('COPY screened (v) FROM STDIN WITH (FORMAT csv)'));
    stream.on('error', reject);
    stream.on('finish', resolve);
    stream.end(data);
  });
}
