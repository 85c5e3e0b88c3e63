import { CirrusError } from '../common/index.js';

/** Every code the simulation subsystem throws; codes are stable and never reused. */
export const SIM_ERROR_CODES = ['CIRRUS_SIM_BAD_ARGUMENT', 'CIRRUS_SIM_UNKNOWN_SCENARIO'] as const;
export type SimErrorCode = (typeof SIM_ERROR_CODES)[number];

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
