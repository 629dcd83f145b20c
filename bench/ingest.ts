import { RmqRecordBuilder } from '@nestjs/microservices';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';

import { RmqClient, SILENT_LOGGER } from '../src/config/amqp';
import { AMQP_SOCKET_OPTIONS } from '../src/config/amqp-connection';
import { CpuMeter } from './cpu';
import { RMQ_URL } from '../test/support/harness';
import type { Figure } from './report';
import { BenchService } from './service';

/** Runs `total` calls with `inFlight` of them outstanding at any time; returns calls per second. */
export async function callsPerSecond(
  total: number,
  inFlight: number,
  call: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await call(next++);
    }),
  );
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

/**
 * Echo and create take turns in this many rounds, each going first in every other round, and the round with the
 * median ratio is reported: the machine's speed drifts by a third within minutes, and adjacent rounds of one build
 * gave ratios 0.48 to 0.65, so three rounds' median moved with whichever round was lucky.
 */
const INGEST_ROUNDS = 9;
/** Bulk messages sent before the bulk figure is timed, as the single creates have theirs: the first ones compile the bulk path. */
const BULK_WARM_UP = 10;

/**
 * Ingest: createOperation over RabbitMQ with `inFlight` requests outstanding, against a bare NestJS RMQ echo
 * handler in the same run; and createOperations with 1,000 operations per message.
 */
export async function benchIngest(options: {
  requests: number;
  inFlight: number;
  bulkMessages: number;
}): Promise<Figure[]> {
  const service = new BenchService();
  const echoQueue = `${service.env.BATCH_SERVICE_RMQ_QUEUE}.echo`;
  const echo = fork(join(__dirname, 'echo-server.js'), [], {
    env: { ...process.env, ECHO_QUEUE: echoQueue },
    stdio: 'inherit',
  });
  const { db } = service;
  try {
    await once(echo, 'message');
    await service.start(['api']);
    await db.query(
      `CREATE TABLE public.bench (id bigserial PRIMARY KEY, qty int NOT NULL, note text, at timestamptz, price numeric(12,2))`,
    );
    const rpc = service.rpc();
    const api = service.process('api').pid();
    const echoClient = new RmqClient(
      {
        urls: [RMQ_URL],
        queue: echoQueue,
        queueOptions: { durable: true, autoDelete: true },
        socketOptions: AMQP_SOCKET_OPTIONS,
      },
      SILENT_LOGGER,
    );
    const operation = (i: number) => ({
      target: 'bench',
      type: 'insert' as const,
      values: { qty: i % 100, note: `note ${i}`, at: '2026-11-21T10:00:00Z', price: 9.5 },
    });
    const echoOnce = (i: number) =>
      firstValueFrom(
        echoClient.send(
          'echo',
          new RmqRecordBuilder(operation(i))
            .setOptions({ headers: { 'x-api-key': service.apiKey }, persistent: true })
            .build(),
        ),
      );

    await callsPerSecond(500, options.inFlight, echoOnce); // warm-up
    await callsPerSecond(500, options.inFlight, (i) => rpc.createOperation(operation(i)));
    // The ratio of two runs made one right after the other is steadier than either rate (INGEST_ROUNDS). Where the
    // machine's two cores go, per request: the service and the baseline share them with the broker, the database and
    // this client.
    const perRound = Math.ceil(options.requests / INGEST_ROUNDS);
    const timed = async (named: Record<string, number>, call: (i: number) => Promise<unknown>) => {
      const cpu = new CpuMeter(named);
      const rate = await callsPerSecond(perRound, options.inFlight, call);
      return { rate, cpu: cpu.perUnit(perRound) };
    };
    const echoTurn = () => timed({ 'echo handler': echo.pid! }, echoOnce);
    const createTurn = () => timed({ service: api }, (i) => rpc.createOperation(operation(i)));
    type Turn = Awaited<ReturnType<typeof timed>>;
    const rounds: { echoed: Turn; created: Turn; ratio: number }[] = [];
    for (let round = 0; round < INGEST_ROUNDS; round++) {
      const echoFirst = round % 2 === 0;
      const first = await (echoFirst ? echoTurn() : createTurn());
      const second = await (echoFirst ? createTurn() : echoTurn());
      const [echoed, created] = echoFirst ? [first, second] : [second, first];
      rounds.push({ echoed, created, ratio: created.rate / echoed.rate });
    }
    rounds.sort((a, b) => a.ratio - b.ratio);
    const { echoed, created } = rounds[Math.floor(INGEST_ROUNDS / 2)];
    const spread = `${rounds[0].ratio.toFixed(2)}–${rounds[INGEST_ROUNDS - 1].ratio.toFixed(2)}`;
    const bulk = Array.from({ length: 1000 }, (_, i) => operation(i));
    await callsPerSecond(BULK_WARM_UP, 4, () => rpc.createOperations(bulk));
    const cpu = new CpuMeter({ service: api });
    const bulkRate = (await callsPerSecond(options.bulkMessages, 4, () => rpc.createOperations(bulk))) * 1000;
    const bulkCpu = cpu.perUnit(options.bulkMessages * 1000);
    const stored = await db.count(`SELECT count(*) AS n FROM batch.operations`);
    if (stored !== 500 + perRound * INGEST_ROUNDS + (BULK_WARM_UP + options.bulkMessages) * 1000)
      throw new Error(`ingest stored ${stored} operations`);

    await echoClient.close();
    await rpc.close();
    return [
      {
        name: `ingest createOperation, ${options.inFlight} in flight`,
        value: created.rate,
        unit: 'req/s',
        baseline: { name: 'NestJS RMQ echo', value: echoed.rate },
        target: 0.7,
        note: `median of ${INGEST_ROUNDS} rounds, ${spread}; CPU per request: ${created.cpu}; echo: ${echoed.cpu}`,
      },
      {
        name: 'ingest createOperations, 1,000 per message',
        value: bulkRate,
        unit: 'ops/s',
        target: 50_000,
        note: `CPU per operation: ${bulkCpu}`,
      },
    ];
  } finally {
    echo.kill('SIGTERM');
    await service.stop();
  }
}
