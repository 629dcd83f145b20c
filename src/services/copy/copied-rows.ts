import { Transform, type TransformCallback } from 'node:stream';

/**
 * Built-in types whose binary form `COPY` reads back the same in another database of the same major version (their
 * type ids are fixed, arrays of them included): a copy between databases sends columns of these types, the same on
 * both sides, in COPY's binary format, which skips writing and parsing each value's text (timestamps, numerics).
 */
const BINARY_TYPES = new Set([
  'smallint',
  'integer',
  'bigint',
  'real',
  'double precision',
  'numeric',
  'boolean',
  'text',
  'character varying',
  'bytea',
  'uuid',
  'date',
  'time without time zone',
  'timestamp without time zone',
  'timestamp with time zone',
  'interval',
  'json',
  'jsonb',
]);

/** Whether every column pair (source type, target type, as format_type spells them without modifiers) can go binary. */
export function binaryCopies(types: [string, string][]): boolean {
  return types.every(([read, written]) => read === written && BINARY_TYPES.has(read.replace(/\[\]$/, '')));
}

/** A server's major version, as `major`: binary COPY between two servers needs the same on both sides. */
export const SERVER_MAJOR_VERSION = `SELECT current_setting('server_version_num')::int / 10000 AS major`;

const NOTHING = Buffer.alloc(0);

/**
 * The rows of a `COPY … TO STDOUT` stream, counted as it passes through: lines of the text format; tuples of the
 * binary format (a header and its extension, then per tuple a 16-bit field count, -1 at the end, and per field a
 * 32-bit length, -1 for NULL, and as many bytes).
 */
export class CopiedRows extends Transform {
  rows = 0;
  /** Bytes to pass over before the next number: the binary header's signature and flags first. */
  private skip = 15;
  private next: 'extension' | 'fields' | 'length' = 'extension';
  private fieldsLeft = 0;
  /** The first bytes of a number split between two chunks. */
  private partial = NOTHING;

  constructor(private readonly binary: boolean) {
    super();
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.binary) for (let at = data.indexOf(10); at >= 0; at = data.indexOf(10, at + 1)) this.rows += 1;
    else this.countTuples(data);
    done(null, data);
  }

  private countTuples(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      if (this.skip > 0) {
        const skipped = Math.min(this.skip, data.length - at);
        this.skip -= skipped;
        at += skipped;
        continue;
      }
      const size = this.next === 'fields' ? 2 : 4;
      const missing = size - this.partial.length;
      if (data.length - at < missing) {
        this.partial = Buffer.concat([this.partial, data.subarray(at)]);
        return;
      }
      const [bytes, offset] =
        this.partial.length === 0 ? [data, at] : [Buffer.concat([this.partial, data.subarray(at, at + missing)]), 0];
      at += missing;
      this.partial = NOTHING;
      this.readNumber(size === 2 ? bytes.readInt16BE(offset) : bytes.readInt32BE(offset));
    }
  }

  private readNumber(value: number): void {
    if (this.next === 'extension') {
      this.skip = value;
      this.next = 'fields';
    } else if (this.next === 'fields') {
      if (value < 0) return; // the trailer
      this.rows += 1;
      this.fieldsLeft = value;
      if (value > 0) this.next = 'length';
    } else {
      this.skip = Math.max(value, 0);
      this.fieldsLeft -= 1;
      if (this.fieldsLeft === 0) this.next = 'fields';
    }
  }
}
