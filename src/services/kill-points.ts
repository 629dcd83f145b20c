/**
 * Points where a fault test stops the process dead, as a crash or a `kill -9` would: BATCH_TEST_KILL_AT names one and
 * the chance that a pass through it kills (`between-commits:0.02`). Tests set it for processes they start; unset, as
 * everywhere else, a point does nothing.
 */
const [point, chance] = (process.env.BATCH_TEST_KILL_AT ?? '').split(':');

export function killPoint(name: string): void {
  if (name === point && Math.random() < Number(chance)) process.kill(process.pid, 'SIGKILL');
}
