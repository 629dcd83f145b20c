import { readdirSync, readFileSync } from 'node:fs';

/** The processes of the machine whose command name is `name` (e.g. beam.smp for RabbitMQ, postgres). */
function pidsNamed(name: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** CPU seconds (user + system) used so far by a process; 0 once it is gone. */
function cpuSecondsOf(pid: number): number {
  try {
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/**
 * Where the machine's CPU goes during a phase of the benchmark: the named processes (the service, or the
 * baseline's process), this benchmark process as the client, RabbitMQ, PostgreSQL and Redis (all of their processes).
 */
export class CpuMeter {
  private readonly started: Map<number, number>;

  constructor(private readonly named: Record<string, number>) {
    this.started = new Map(this.parties().map(([, pid]) => [pid, cpuSecondsOf(pid)]));
  }

  /**
   * Microseconds of CPU per unit of work (request, operation) since the meter was made, by party, e.g. "service 230 µs,
   * broker 105 µs, …" (a tenth where under 10). A process that started meanwhile (a database connection opened by the
   * phase) counts whole; one that ended meanwhile is not counted.
   */
  perUnit(units: number): string {
    const used = new Map<string, number>();
    for (const [party, pid] of this.parties())
      used.set(party, (used.get(party) ?? 0) + cpuSecondsOf(pid) - (this.started.get(pid) ?? 0));
    return [...used]
      .map(([party, seconds]) => [party, (seconds * 1e6) / units] as const)
      .filter(([, micros]) => micros >= 0.05)
      .map(([party, micros]) => `${party} ${micros < 10 ? micros.toFixed(1) : Math.round(micros)} µs`)
      .join(', ');
  }

  private parties(): [string, number][] {
    return [
      ...Object.entries(this.named),
      ['client', process.pid],
      ...pidsNamed('beam.smp').map((pid): [string, number] => ['broker', pid]),
      ...pidsNamed('postgres').map((pid): [string, number] => ['database', pid]),
      ...pidsNamed('redis-server').map((pid): [string, number] => ['redis', pid]),
    ];
  }
}
