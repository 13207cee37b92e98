#!/usr/bin/env node
/**
 * The `lockwarden` command: parsing (commander, from the table in options.ts) and exit
 * codes; the work is in run.ts, descriptor.ts and inspect.ts.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { LockError } from '../errors.js';
import { printable } from '../printable.js';
import { completionScript } from './completion.js';
import { runOnDescriptor } from './descriptor.js';
import { EXIT, exitCodeFor, UsageError } from './exit.js';
import { clean, list, type StatusTarget, status } from './inspect.js';
import { metrics } from './metrics.js';
import {
  COMMANDS,
  type CommandDef,
  type CommandName,
  flagParts,
  optionsOf,
  usageLine,
} from './options.js';
import { resolveStore } from './root.js';
import { runLocked } from './run.js';
import { isPathOperand, planRun, type RunFlags } from './run-args.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

type Flags = RunFlags & Record<string, unknown>;

/** The usage lines printed after a usage error in `command` (null: the program's). */
function usageText(command: string | null): string {
  const def = COMMANDS.find((c) => c.name === command);
  if (def !== undefined)
    return `usage: ${usageLine(def)}\nTry 'lockwarden ${def.name} --help' for more information.`;
  return `${COMMANDS.map((c, i) => `${i === 0 ? 'usage: ' : '       '}${usageLine(c)}`).join('\n')}\nTry 'lockwarden --help' for more information.`;
}

/** Adds the options of `name` (null: the program-wide ones) with flock(1)'s spellings. */
function addOptions(cmd: Command, name: CommandName | null): void {
  for (const def of optionsOf(name)) {
    const option = new Option(def.flags, def.description);
    if (def.defaultValue !== undefined) option.default(def.defaultValue);
    if (def.unsupported !== undefined) option.hideHelp();
    cmd.addOption(option);
    const { value } = flagParts(def.flags);
    for (const alias of def.aliases ?? []) {
      const hidden = new Option(value === undefined ? alias : `${alias} <${value}>`).hideHelp();
      cmd.addOption(hidden);
      // Same order as written: the last spelling given wins, as for any option.
      cmd.on(`option:${hidden.name()}`, (v: string | undefined) =>
        cmd.setOptionValueWithSource(option.attributeName(), value === undefined ? true : v, 'cli'),
      );
    }
  }
}

/** Program-wide options given after the command win over those given before it. */
function merged(program: Command, cmd: Command): Flags {
  const own = Object.entries(cmd.opts()).filter(([k]) => cmd.getOptionValueSource(k) !== 'default');
  return { ...cmd.opts(), ...program.opts(), ...Object.fromEntries(own) } as Flags;
}

function rejectUnsupported(o: Flags, name: CommandName): void {
  for (const def of optionsOf(name)) {
    if (def.unsupported === undefined) continue;
    const key = new Option(def.flags).attributeName();
    if (o[key] !== undefined)
      throw new UsageError(`${flagParts(def.flags).long}: ${def.unsupported}`);
  }
}

function subcommand(program: Command, def: CommandDef): Command {
  const cmd = program
    .command(def.name)
    .usage(`[options]${def.operands === '' ? '' : ` ${def.operands}`}`)
    .summary(def.summary)
    .description(`${def.summary}.\n\n${def.details.join('\n\n')}`)
    .exitOverride((err) => {
      throw Object.assign(err, { command: def.name });
    });
  addOptions(cmd, def.name);
  return cmd;
}

function program(): Command {
  const cli = new Command('lockwarden')
    .description(
      'Named shared/exclusive locks for scripts, with the holder shown; a drop-in for flock(1).',
    )
    .usage('[options] <command> ...')
    .version(pkg.version, '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText('after', `\n${usageText(null).split('\nTry')[0]}\n\nSee lockwarden(1).`);
  addOptions(cli, null);
  const looked = (name: CommandName, action: (o: Flags, ...args: never[]) => Promise<number>) => {
    const def = COMMANDS.find((c) => c.name === name) as CommandDef;
    return subcommand(cli, def).action(async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const o = merged(cli, cmd);
      try {
        rejectUnsupported(o, name);
        process.exitCode = await (action as (o: Flags, ...a: unknown[]) => Promise<number>)(
          o,
          ...args.slice(0, -2),
        );
      } catch (err) {
        if (err instanceof UsageError) err.command ??= name;
        throw err;
      }
    });
  };

  looked('run', async (o, target?: string, rest?: string[]) => {
    const plan = planRun(target, rest ?? [], o, process.env);
    if (plan.target.kind === 'descriptor') return runOnDescriptor({ ...plan, target: plan.target });
    return runLocked({ ...plan, target: plan.target, command: plan.command as string[] });
  })
    .argument('[target]', 'a file path, a descriptor number or a lock id')
    .argument('[command...]', 'the command and its arguments')
    .passThroughOptions();

  looked('status', async (o, operand?: string) => {
    const path = o.file ?? (operand !== undefined && isPathOperand(operand) ? operand : undefined);
    if (path !== undefined && operand !== undefined && o.file !== undefined)
      throw new UsageError('give the lock once: an operand or --file');
    const target: StatusTarget =
      path !== undefined
        ? { kind: 'path', path: resolve(path) }
        : {
            kind: 'id',
            id: operand,
            root: resolveStore(o, process.env, false),
            namespace: o.namespace ?? (process.env.LOCKWARDEN_NAMESPACE || undefined),
          };
    return status(target, o.json === true);
  }).argument('[target]', 'a file path or a lock id (default: every lock of the root)');

  const namespace = (o: Flags) => o.namespace ?? (process.env.LOCKWARDEN_NAMESPACE || undefined);
  looked('list', (o) => list(resolveStore(o, process.env, false), o.json === true, namespace(o)));
  looked('clean', (o) => clean(resolveStore(o, process.env, false), o.json === true, namespace(o)));
  looked('metrics', (o) => metrics(resolveStore(o, process.env, false), namespace(o)));
  looked('completion', async (_o, shell?: string) => {
    if (shell !== 'bash' && shell !== 'zsh')
      throw new UsageError(`completion for '${shell ?? ''}': choose bash or zsh`);
    process.stdout.write(completionScript(shell));
    return 0;
  }).argument('[shell]', 'bash or zsh');
  return cli;
}

// A reader that went away (`lockwarden status | head -1`) is not an error to report, as
// with any Unix filter: stop quietly instead of crashing with EPIPE on the next write.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

try {
  await program().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') {
      process.exitCode = 0;
    } else if (err.code === 'commander.help') {
      // Help asked for (`lockwarden help`) is a success; help shown for no command is not.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.USAGE;
    } else {
      const command = (err as CommanderError & { command?: string }).command ?? null;
      process.stderr.write(
        `lockwarden: ${err.message
          .replace(/^error: /, '')
          .split('\n')
          .map(printable)
          .join('\n')}\n${usageText(command)}\n`,
      );
      process.exitCode = EXIT.USAGE;
    }
  } else if (err instanceof UsageError) {
    process.stderr.write(
      `lockwarden: ${printable(err.message)}\n${usageText(err.command ?? null)}\n`,
    );
    process.exitCode = EXIT.USAGE;
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
