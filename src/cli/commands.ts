import type { Command } from 'commander';

/** Every sub-command file exports one `register*` function; they are wired here. */
export function registerCommands(program: Command): void {
  void program;
}
