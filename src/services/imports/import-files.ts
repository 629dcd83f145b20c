import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { BatchError } from '../batch-error';
import { IMPORT_FILES_LOCK_SPACE } from '../storage/advisory-locks';
import { Database } from '../storage/database';

/** The size of a stored block: a chunk reads the blocks its byte range touches. */
export const BLOCK_BYTES = 1 << 20;

/** An uploaded data set as stored: its id and its size (decompressed). */
export interface ImportFile {
  id: string;
  bytes: number;
}

/**
 * The uploaded data sets, in PostgreSQL (batch.import_files and their blocks), where any worker reads them. A file is
 * written inside the upload's transaction, block by block as the body arrives, so a broken upload leaves nothing; it
 * is known by its client and the sha256 of the body as sent, and an upload of the same bytes again keeps the file
 * stored first.
 */
@Injectable()
export class ImportFiles {
  constructor(private readonly db: Database) {}

  /**
   * Starts a file in `tx`; its blocks are added with `append`, and `finish` names it by its sha256 (and says whether
   * the body was gzip).
   */
  async create(tx: PoolClient, clientId: string): Promise<string> {
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO batch.import_files (client_id, sha256, gzip, bytes) VALUES ($1, $2, false, 0) RETURNING id`,
      [clientId, `uploading-${randomBytes(12).toString('hex')}`],
    );
    return rows[0].id;
  }

  async append(tx: PoolClient, fileId: string, offset: number, data: Buffer): Promise<void> {
    await tx.query({
      name: 'import-block',
      text: `INSERT INTO batch.import_blocks (file_id, byte_offset, data) VALUES ($1, $2, $3)`,
      values: [fileId, offset, data],
    });
  }

  /**
   * The bytes (decompressed) of the client's files stored and committed: all it uploaded that retention has not deleted
   * yet (BATCH_RETENTION_HOURS after its upload, once no import of it runs).
   */
  async storedBytes(tx: PoolClient, clientId: string): Promise<number> {
    const { rows } = await tx.query<{ bytes: string }>(
      `SELECT coalesce(sum(bytes), 0) AS bytes FROM batch.import_files WHERE client_id = $1`,
      [clientId],
    );
    return Number(rows[0].bytes);
  }

  /**
   * Names the file by the sha256 of the body as sent; when the client stored the same body before, the new copy is
   * dropped and the one stored first is used (the same bytes sent once compressed and once not are refused: they are
   * two data sets of one name). Otherwise the client's files, this one included, must fit in `quota` bytes. Holds the
   * client's files locked to the end of `tx` (IMPORT_FILES_LOCK_SPACE): uploads of one client take turns here, each
   * finding what the one before it committed, where two of the same bytes at once both named their file and the second
   * met the unique key, and two that each fitted beside what was stored when they began could together pass the quota.
   * Returns the file's id.
   */
  async finish(
    tx: PoolClient,
    clientId: string,
    fileId: string,
    body: { sha256: string; bytes: number; gzip: boolean },
    quota: number,
  ): Promise<string> {
    const { sha256, bytes, gzip } = body;
    await tx.query(`SELECT pg_advisory_xact_lock(${IMPORT_FILES_LOCK_SPACE}, ($1::bigint % 2147483647)::int)`, [
      clientId,
    ]);
    const { rows } = await tx.query<{ id: string; same: boolean }>(
      `SELECT id, gzip = $3 AS same FROM batch.import_files WHERE client_id = $1 AND sha256 = $2`,
      [clientId, sha256, gzip],
    );
    if (rows.length > 0) {
      if (!rows[0].same)
        throw new BatchError(
          'VALIDATION_FAILED',
          'These bytes were uploaded before with another Content-Encoding: send them as then, or add a runId',
        );
      await tx.query(`DELETE FROM batch.import_files WHERE id = $1`, [fileId]);
      return rows[0].id;
    }
    const stored = await this.storedBytes(tx, clientId);
    if (stored + bytes > quota) throw overQuota(quota, stored);
    await tx.query(`UPDATE batch.import_files SET sha256 = $2, bytes = $3, gzip = $4 WHERE id = $1`, [
      fileId,
      sha256,
      bytes,
      gzip,
    ]);
    return fileId;
  }

  /** The client's file of this sha256, or null. */
  async find(clientId: string, sha256: string): Promise<ImportFile | null> {
    const [row] = await this.db.query<{ id: string; bytes: string }>(
      `SELECT id, bytes FROM batch.import_files WHERE client_id = $1 AND sha256 = $2`,
      [clientId, sha256],
    );
    return row ? { id: row.id, bytes: Number(row.bytes) } : null;
  }

  /**
   * The bytes of a file from `offset`, `length` of them at most (fewer at its end); read in `tx`, or on a connection of
   * the pool (blocks never change once committed). They come as COPY's binary format, the blocks' own bytes: as query
   * results they come as hex text, twice their size, to be decoded again, which cost the database and the service a
   * good share of an import's work (node-postgres reads no binary results).
   */
  async read(tx: PoolClient | Pool, fileId: string, offset: number, length: number): Promise<Buffer> {
    const first = Math.floor(offset / BLOCK_BYTES) * BLOCK_BYTES;
    const blocks =
      `COPY (SELECT data FROM batch.import_blocks WHERE file_id = ${BigInt(fileId)} AND byte_offset >= ${first} ` +
      `AND byte_offset < ${offset + length} ORDER BY byte_offset) TO STDOUT (FORMAT binary)`;
    const client = 'release' in tx ? tx : await tx.connect();
    try {
      const fields = new BinaryCopyField();
      for await (const piece of client.query(copyTo(blocks))) fields.write(piece as Buffer);
      return fields.data().subarray(offset - first, offset - first + length); // blocks start at multiples of BLOCK_BYTES
    } finally {
      if (client !== tx) client.release();
    }
  }
}

/** PAYLOAD_TOO_LARGE for an upload that would take a client's stored data sets past its quota. */
export function overQuota(quota: number, stored: number): BatchError {
  return new BatchError(
    'PAYLOAD_TOO_LARGE',
    `This upload would take the client's stored data sets past its quota of ${quota} bytes (decompressed): ` +
      `${stored} bytes are stored, each data set kept until retention deletes it`,
    { quotaBytes: quota, storedBytes: stored },
  );
}

/**
 * The one field of each row of COPY's binary format, concatenated once the output has arrived (a row's header or
 * bytes may be split between its pieces). PostgreSQL's "Binary Format" of COPY: a signature, flags and the size of a
 * header extension (19 bytes), the extension, then each row's field count (16 bits, -1 at the end) and its field's
 * length (32 bits) before the field's bytes.
 */
class BinaryCopyField {
  private readonly parts: Buffer[] = [];
  private readonly header = Buffer.alloc(19);
  private headerSize = 0;
  private headerWanted = 19;
  /** Bytes to pass over (the header extension), and bytes of the current field still to come. */
  private skip = 0;
  private field = 0;

  write(piece: Buffer): void {
    for (let at = 0; at < piece.length;) {
      if (this.skip > 0 || this.field > 0) {
        const taken = Math.min(this.skip || this.field, piece.length - at);
        if (this.skip > 0) this.skip -= taken;
        else {
          this.parts.push(piece.subarray(at, at + taken));
          this.field -= taken;
        }
        at += taken;
        continue;
      }
      const taken = Math.min(this.headerWanted - this.headerSize, piece.length - at);
      this.headerSize += piece.copy(this.header, this.headerSize, at, at + taken);
      at += taken;
      if (this.headerSize < this.headerWanted) continue;
      this.headerSize = 0;
      if (this.headerWanted === 19) [this.skip, this.headerWanted] = [this.header.readInt32BE(15), 6];
      else if (this.header.readInt16BE(0) === 1) this.field = this.header.readInt32BE(2);
      else return; // the end
    }
  }

  data(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
  }
}
