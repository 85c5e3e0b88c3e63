import type { Command } from 'commander';
import { registerDemoCommand } from './demo.js';

/** Every sub-command file exports one `register*` function; they are wired here. */
export function registerCommands(program: Command): void {
  registerDemoCommand(program);
}
