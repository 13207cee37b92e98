/**
 * What `lockwarden run`'s operands and options ask for, decided once (the rule in
 * options.ts OPERAND_RULE) and checked the way flock(1) checks them.
 */
import { resolve } from 'node:path';
import { LockType } from '../types.js';
import { UsageError } from './exit.js';
import { resolveStore } from './root.js';

/** The options of `run` once parsed, program-wide ones merged in. */
export interface RunFlags {
  shared?: boolean;
  exclusive?: boolean;
  unlock?: boolean;
  nonblock?: boolean;
  wait?: string | boolean;
  conflictExitCode?: string | number;
  command?: string;
  close?: boolean;
  fork?: boolean;
  fd?: string;
  file?: string;
  verbose?: boolean;
  user?: string;
  json?: boolean;
  root?: string;
  store?: string;
  namespace?: string;
}

/** Where the lock is: an id in a root or store, a file path, or an inherited descriptor. */
export type Target =
  | { kind: 'id'; id: string; root: string; namespace: string | undefined }
  | { kind: 'path'; path: string }
  | { kind: 'descriptor'; fd: number };

export interface RunPlan {
  target: Target;
  /** null: the descriptor form with no command (lock or unlock, then exit). */
  command: string[] | null;
  type: LockType;
  unlock: boolean;
  /** Milliseconds: 0 = one attempt, Infinity = wait forever. */
  timeoutMs: number;
  conflictExitCode: number;
  /** -o: the command does not inherit the lock. */
  close: boolean;
  verbose: boolean;
  user: string | undefined;
  json: boolean;
}

/** `/x`, `./x`, `../x`, `.`, `..`: the operand names a file, as it would for flock(1). */
export function isPathOperand(operand: string): boolean {
  return /^(\/|\.\.?(\/|$))/.test(operand);
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new UsageError(`invalid wait '${value}': expected seconds >= 0`);
  return n;
}

function exitCode(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 255)
    throw new UsageError(`invalid conflict exit code '${value}': expected 0 to 255`);
  return Number(value);
}

function descriptor(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 2 ** 31 - 1)
    throw new UsageError(`invalid file descriptor '${value}'`);
  return Number(value);
}

/** The shell flock(1) uses for -c: $SHELL, else /bin/sh. */
export function shellCommand(command: string, env: NodeJS.ProcessEnv): string[] {
  return [env.SHELL || '/bin/sh', '-c', command];
}

/**
 * @param operand  the first operand (undefined if none)
 * @param rest     what followed it, verbatim (commander passes options after it through)
 */
export function planRun(
  operand: string | undefined,
  rest: string[],
  o: RunFlags,
  env: NodeJS.ProcessEnv,
): RunPlan {
  let words = [...rest];
  let target: Target | null = null;
  if (o.fd !== undefined || o.file !== undefined) {
    if (o.fd !== undefined && o.file !== undefined)
      throw new UsageError('choose one of --fd and --file');
    // The operand, if any, is the command's first word.
    if (operand !== undefined) words.unshift(operand);
    target =
      o.fd !== undefined
        ? { kind: 'descriptor', fd: descriptor(o.fd) }
        : { kind: 'path', path: resolve(o.file as string) };
  } else if (operand === undefined) {
    throw new UsageError('missing the lock: a file, a descriptor or an id');
  }
  let dashed = false;
  if (target === null && words[0] === '--') {
    words.shift();
    dashed = true;
  }
  // flock(1)'s `FILE -c COMMAND` form: -c after the operand.
  let shell = o.command;
  if (!dashed && (words[0] === '-c' || words[0] === '--command')) {
    if (words.length !== 2)
      throw new UsageError(`${words[0]} requires exactly one command argument`);
    if (shell !== undefined) throw new UsageError('-c given twice');
    shell = words[1] as string;
    words = [];
  }
  const dash = words.indexOf('--');
  if (!dashed && dash > 0 && words.slice(0, dash).every((a) => a.startsWith('-')))
    throw new UsageError(`options go before the lock: ${words.slice(0, dash).join(' ')}`);
  if (shell !== undefined && words.length > 0)
    throw new UsageError('-c takes one command string: give no other command');
  let command: string[] | null = shell !== undefined ? shellCommand(shell, env) : words;
  if (command.length === 0) command = null;

  if (target === null) {
    const name = operand as string;
    if (/^\d+$/.test(name) && command === null)
      target = { kind: 'descriptor', fd: descriptor(name) };
    else if (isPathOperand(name)) target = { kind: 'path', path: resolve(name) };
    else {
      target = {
        kind: 'id',
        id: name,
        root: resolveStore(o, env),
        namespace: o.namespace ?? (env.LOCKWARDEN_NAMESPACE || undefined),
      };
    }
  }
  if (command === null && (target.kind !== 'descriptor' || o.fd !== undefined))
    throw new UsageError('missing the command to run');
  if (o.shared && o.exclusive) throw new UsageError('choose one of -s and -x');
  if (o.unlock && target.kind !== 'descriptor')
    throw new UsageError(
      '-u drops the lock of a descriptor (FD or --fd): a file or id has none to drop',
    );
  if (o.unlock && (o.shared || o.exclusive)) throw new UsageError('choose one of -s, -x and -u');
  if (o.close && o.fd !== undefined)
    throw new UsageError("-o with --fd: the descriptor is the caller's to close, not lockwarden's");
  if (o.fork === false && o.close)
    throw new UsageError('the --no-fork and --close options are incompatible');
  if (target.kind !== 'id') {
    for (const [given, flag] of [
      [o.root, '--root'],
      [o.store, '--store'],
      [o.namespace, '--namespace'],
      [o.user, '--user'],
    ] as const) {
      if (given !== undefined)
        throw new UsageError(
          `${flag} applies to lock ids; a ${target.kind === 'path' ? 'file' : 'descriptor'} is locked as flock(1) locks it`,
        );
    }
  }
  const waitGiven = typeof o.wait === 'string' ? seconds(o.wait) : undefined;
  return {
    target,
    command,
    type: o.shared ? LockType.SHARED : LockType.EXCLUSIVE,
    unlock: o.unlock === true,
    timeoutMs:
      o.nonblock === true
        ? 0
        : waitGiven === undefined
          ? Number.POSITIVE_INFINITY
          : waitGiven * 1000,
    conflictExitCode: exitCode(String(o.conflictExitCode ?? 1)),
    close: o.close === true,
    verbose: o.verbose === true,
    user: o.user,
    json: o.json === true,
  };
}
