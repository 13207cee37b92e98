#!/usr/bin/env node
/** The `lockwarden` command: argument parsing and exit codes; the work is in run.ts and inspect.ts. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LockError } from '../errors.js';
import { printable } from '../printable.js';
import { LockType } from '../types.js';
import { CliError, EXIT, exitCodeFor } from './exit.js';
import { clean, list, status } from './inspect.js';
import { resolveStore } from './root.js';
import { runLocked } from './run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const RUN_USAGE =
  'lockwarden run [-s|-x] [-w SECONDS | -n] [-E CODE] [--root DIR | --store URL] [--user NAME] [--json] ID -- CMD [ARGS...]';

function usage(message: string): never {
  throw new CliError(
    `${message}\nusage: ${RUN_USAGE}\n       lockwarden status [ID] [--json] | list [--json] | clean [--json]`,
    EXIT.USAGE,
  );
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    usage(`invalid wait '${value}': expected seconds >= 0`);
  return n;
}

function exitCode(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 255)
    usage(`invalid conflict exit code '${value}': expected 0 to 255`);
  return n;
}

const rootOption = () =>
  new Option('--root <dir>', 'lock root (default: $LOCKWARDEN_ROOT, else <tmpdir>/lockwarden)');
const storeOption = () =>
  new Option(
    '--store <url>',
    'lock on a PostgreSQL server instead of a directory: postgres://user:pass@host/db (default: $LOCKWARDEN_STORE)',
  ).conflicts('root');

function program(): Command {
  const cli = new Command('lockwarden')
    .description('Named shared/exclusive locks for scripts, with the holder shown')
    .version(pkg.version, '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .addOption(storeOption())
    .option(
      '--namespace <name>',
      'PostgreSQL namespace, to keep applications apart (default: $LOCKWARDEN_NAMESPACE, else lockwarden)',
    );
  const where = (o: { root?: string; store?: string }) =>
    resolveStore(o, cli.opts<{ store?: string }>().store, process.env);
  const namespace = (): string | undefined =>
    cli.opts<{ namespace?: string }>().namespace ?? (process.env.LOCKWARDEN_NAMESPACE || undefined);

  cli
    .command('run')
    .usage(
      '[-s|-x] [-w SECONDS | -n] [-E CODE] [--root DIR | --store URL] [--user NAME] [--json] ID -- CMD [ARGS...]',
    )
    .description('run CMD while holding the lock ID (exclusive unless -s)')
    .argument('<id>', 'lock id')
    .argument('<command...>', 'command and its arguments')
    .option('-s, --shared', 'take a shared lock')
    .option('-x, --exclusive', 'take an exclusive lock (the default)')
    .option(
      '-w, --wait <seconds>',
      'give up after this many seconds (fractions allowed); default: wait forever',
    )
    .option('-n, --no-wait', 'give up at once if the lock is held')
    .option('-E, --conflict-exit-code <code>', 'exit code when the lock is held', '1')
    .addOption(rootOption())
    .addOption(storeOption())
    .option('--user <name>', 'name to show as the holder (default: your login name)')
    .option('--json', 'report a conflict as JSON on stderr')
    .passThroughOptions()
    .exitOverride()
    .action(
      async (id: string, command: string[], o: Record<string, string | boolean | undefined>) => {
        if (command[0] === '--') command.shift();
        const dash = command.indexOf('--');
        if (dash > 0 && command.slice(0, dash).every((a) => a.startsWith('-'))) {
          usage(`options go before the id: ${command.slice(0, dash).join(' ')}`);
        }
        if (command.length === 0) usage('missing the command to run');
        if (o.shared && o.exclusive) usage('choose one of -s and -x');
        const timeoutMs =
          o.wait === false
            ? 0
            : o.wait === true || o.wait === undefined
              ? Number.POSITIVE_INFINITY
              : seconds(o.wait as string) * 1000;
        process.exitCode = await runLocked({
          id,
          command,
          type: o.shared ? LockType.SHARED : LockType.EXCLUSIVE,
          timeoutMs,
          conflictExitCode: exitCode(String(o.conflictExitCode)),
          root: where(o as { root?: string; store?: string }),
          namespace: namespace(),
          user: o.user as string | undefined,
          json: o.json === true,
        });
      },
    );

  cli
    .command('status')
    .description('show who holds ID, or every lock')
    .argument('[id]', 'lock id')
    .addOption(rootOption())
    .addOption(storeOption())
    .option('--json', 'print JSON')
    .exitOverride()
    .action(
      async (id: string | undefined, o: { root?: string; store?: string; json?: boolean }) => {
        process.exitCode = await status(where(o), id, o.json === true, namespace());
      },
    );

  cli
    .command('list')
    .description('list every lock with its state')
    .addOption(rootOption())
    .addOption(storeOption())
    .option('--json', 'print JSON')
    .exitOverride()
    .action(async (o: { root?: string; store?: string; json?: boolean }) => {
      process.exitCode = await list(where(o), o.json === true, namespace());
    });

  cli
    .command('clean')
    .description('remove lock files nobody holds')
    .addOption(rootOption())
    .addOption(storeOption())
    .option('--json', 'print JSON')
    .exitOverride()
    .action(async (o: { root?: string; store?: string; json?: boolean }) => {
      process.exitCode = await clean(where(o), o.json === true, namespace());
    });
  return cli;
}

try {
  await program().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    ) {
      process.exitCode = 0;
    } else {
      process.stderr.write(
        `lockwarden: ${printable(err.message.replace(/^error: /, ''))}\nusage: ${RUN_USAGE}\n`,
      );
      process.exitCode = EXIT.USAGE;
    }
  } else {
    // A LockError's message is printable already; anything else may quote what a user typed.
    const message =
      err instanceof LockError
        ? err.message
        : printable(String(err instanceof Error ? err.message : err));
    process.stderr.write(`lockwarden: ${message}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
