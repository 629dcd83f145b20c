import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rejectsCsv } from '../../src/controllers/rejects-csv';
import type { IJobReject } from '../../src/interfaces/job.interfaces';

const reject = (fields: Partial<IJobReject>): IJobReject => ({
  line: 2,
  byteOffset: 10,
  column: null,
  code: '22P02',
  message: 'invalid input syntax for type integer: "x"',
  record: 'x,1',
  ...fields,
});

describe('rejects as CSV', () => {
  it('writes a header, then each reject with its fields quoted where RFC 4180 needs it', () => {
    assert.equal(
      rejectsCsv([reject({}), reject({ line: 3, byteOffset: 14, column: 'qty', record: 'plain' })]),
      'line,byteOffset,column,code,message,record\r\n' +
        '2,10,,22P02,"invalid input syntax for type integer: ""x""","x,1"\r\n' +
        '3,14,qty,22P02,"invalid input syntax for type integer: ""x""",plain\r\n',
    );
  });

  it('writes a text field a spreadsheet would take for a formula after an apostrophe', () => {
    const row = (fields: Partial<IJobReject>) => rejectsCsv([reject(fields)]).split('\r\n')[1];
    assert.equal(
      row({ record: '=HYPERLINK("http://x")' }),
      `2,10,,22P02,"${'invalid input syntax for type integer: ""x""'}","'=HYPERLINK(""http://x"")"`,
    );
    for (const start of ['+', '-', '@', '\t'])
      assert.equal(row({ record: `${start}1`, message: 'm' }), `2,10,,22P02,m,'${start}1`);
    assert.equal(row({ record: '\rx', message: 'm' }), `2,10,,22P02,m,"'\rx"`);
    assert.equal(row({ column: '=A1', message: '@m', record: 'r' }), "2,10,'=A1,22P02,'@m,r");
  });

  it('leaves numbers and other text as they are', () => {
    const csv = rejectsCsv([reject({ line: 1, byteOffset: 0, record: 'a=b', message: 'x-y' })]);
    assert.equal(csv.split('\r\n')[1], '1,0,,22P02,x-y,a=b');
  });
});
