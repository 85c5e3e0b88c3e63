import type { Command } from 'commander';
import { registerDemoCommand } from './demo.js';
import { registerGatewayCommands } from './gateway.js';
import { registerSimCommands } from './sim.js';
import { registerStoreCommands } from './store.js';

/** Every sub-command file exports one `register*` function; they are wired here. */
export function registerCommands(program: Command): void {
  registerStoreCommands(program);
  registerGatewayCommands(program);
  registerSimCommands(program);
  registerDemoCommand(program);
}
