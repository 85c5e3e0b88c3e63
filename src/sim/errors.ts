import { CirrusError } from '../common/index.js';

/** A caller passed a bad argument; the message names it. Nothing was started or changed. */
export class SimArgumentError extends CirrusError {
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('CIRRUS_SIM_BAD_ARGUMENT', `${argument}: ${message}`);
    this.argument = argument;
  }
}

/** The scenario name is not one of SCENARIOS. */
export class SimUnknownScenarioError extends CirrusError {
  constructor(name: string, known: readonly string[]) {
    super('CIRRUS_SIM_UNKNOWN_SCENARIO', `unknown scenario "${name}" (known: ${known.join(', ')})`);
  }
}

/** The cluster or load generator was used after close()/stop(). */
export class SimClosedError extends CirrusError {
  constructor(what: string) {
    super('CIRRUS_SIM_CLOSED', `${what} is closed`);
  }
}
