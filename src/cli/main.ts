#!/usr/bin/env node
import { Command } from 'commander';
import { registerCommands } from './commands.js';

/**
 * The `cirrus` command. Each sub-command lives in its own file in this folder and registers
 * itself through commands.ts, so this file stays a door, not a god file.
 */
const program = new Command();
program
  .name('cirrus')
  .description('Cirrus: a durable hot/cold message store and an adaptive HTTP gateway')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

registerCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  // Node's system errors already begin with their code ("ENOENT: no such file ..."): say it once.
  const prefix = e.code && !message.startsWith(`${e.code}:`) ? `${e.code}: ` : '';
  process.stderr.write(`cirrus: ${prefix}${message}\n`);
  process.exitCode = 1;
});
