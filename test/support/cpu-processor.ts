import { createHash } from 'node:crypto';
import { threadId } from 'node:worker_threads';

/** A CPU-bound processor for threadProcessor's test: hashes the item's name a thousand times, in whatever thread. */
export function process(item: { id: number; name: string }): { id: number; name: string; thread: number } {
  if (item.id === 13) throw Object.assign(new Error('13 is refused'), { code: 'UNLUCKY' });
  let digest = item.name;
  for (let i = 0; i < 1000; i++) digest = createHash('sha256').update(digest).digest('hex');
  return { id: item.id, name: digest.slice(0, 8), thread: threadId };
}
