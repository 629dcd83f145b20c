/** Up to how many bytes a loop copies faster than Buffer.copy. */
const SHORT_COPY = 32;

/** Bytes written one after another into a buffer that grows as needed. */
export class ByteWriter {
  private buffer: Buffer;
  /** How many bytes are written; set back to drop what was written since. */
  length = 0;

  /** `initialBytes`: the buffer's first size (an import's records, 64 KB; a small message, far less). */
  constructor(initialBytes = 1 << 16) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  private room(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  byte(value: number): void {
    this.room(1);
    this.buffer[this.length++] = value;
  }

  bytes(source: Buffer, start: number, end: number): void {
    this.room(end - start);
    if (end - start > SHORT_COPY) this.length += source.copy(this.buffer, this.length, start, end);
    else for (let i = start; i < end; i++) this.buffer[this.length++] = source[i]; // no native call for a few bytes
  }

  text(text: string): void {
    this.room(Buffer.byteLength(text));
    this.length += this.buffer.write(text, this.length);
  }

  data(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
