/** A setting that stops the start: the message names the variable and what is wrong, never a secret it holds. */
export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
  }
}
