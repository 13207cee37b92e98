/**
 * Every command and option of `lockwarden`, in one table: the parser (main.ts), the help,
 * the shell completions (completion.ts) and the man page (man.ts) are all made from it,
 * so none of them can list an option the others do not know.
 */

export type CommandName = 'run' | 'status' | 'list' | 'clean' | 'metrics' | 'completion';

export interface OptionDef {
  /** Commander's flags: `-w, --wait <seconds>`; a `<value>` means the option takes one. */
  readonly flags: string;
  /** Other spellings accepted (flock(1)'s), never listed in the help. */
  readonly aliases?: readonly string[];
  readonly description: string;
  /** Shown as `(default: 1)`. */
  readonly defaultValue?: number;
  /** `all`: accepted before the command and after it (program-wide). */
  readonly commands: 'all' | readonly CommandName[];
  /** What to complete for the value. */
  readonly complete?: 'file' | 'directory' | 'none';
  /** Accepted only to say why lockwarden does not do it (a usage error); never listed. */
  readonly unsupported?: string;
}

export interface CommandDef {
  readonly name: CommandName;
  /** The operands, as the usage line shows them. */
  readonly operands: string;
  readonly summary: string;
  /** Paragraphs for `--help` and the man page. */
  readonly details: readonly string[];
  /** What the operands complete to. */
  readonly completeOperand: 'file' | 'shell' | 'none';
}

/** How `run` and `status` tell their operand's kinds apart (usage text, man page, README). */
export const OPERAND_RULE =
  'TARGET is a path if it starts with /, ./ or ../ (or is . or ..), or is given with ' +
  '--file: that very file is locked, as flock(1) locks it. A number with no command is a ' +
  'descriptor this process inherited (flock(1)\'s "flock 9" form). Anything else is a ' +
  'lock id: the file <root>/.locks/ID.lock.';

export const COMMANDS: readonly CommandDef[] = [
  {
    name: 'run',
    operands: 'TARGET [--] CMD [ARGS...] | TARGET -c CMD | FD',
    summary: 'run CMD while holding the lock TARGET (exclusive unless -s)',
    details: [
      OPERAND_RULE,
      'CMD inherits the locked descriptor, so the lock is held until CMD and every child ' +
        'it started are done, even if lockwarden is killed (-o prevents this). The exit ' +
        'status is the exit status of CMD, or 128+N if it died of signal N.',
      'With a descriptor FD and no command, the lock is taken (or with -u dropped) on the ' +
        'open file description of FD and lockwarden exits: the lock stays with the calling ' +
        'shell, as with "exec 9>file; flock 9".',
    ],
    completeOperand: 'file',
  },
  {
    name: 'status',
    operands: '[TARGET]',
    summary: 'show who holds TARGET, or every lock of the root',
    details: [OPERAND_RULE, 'Nothing is created: a missing root or lock file is a free lock.'],
    completeOperand: 'file',
  },
  {
    name: 'list',
    operands: '',
    summary: 'list every lock of the root with its state',
    details: ['Nothing is created: a missing root has no locks.'],
    completeOperand: 'none',
  },
  {
    name: 'clean',
    operands: '',
    summary: 'remove lock files nobody holds',
    details: ['Files given as paths are never removed; only lock files of ids in the root.'],
    completeOperand: 'none',
  },
  {
    name: 'metrics',
    operands: '',
    summary: 'print the holders and waiters of the root as Prometheus text',
    details: [
      'Gauges per id and mode (held, waiting) and the age of the oldest hold and wait, for ' +
        'a node_exporter textfile collector or a cron job. Nothing is created.',
    ],
    completeOperand: 'none',
  },
  {
    name: 'completion',
    operands: 'bash|zsh',
    summary: 'print a shell completion script',
    details: [
      'bash: source <(lockwarden completion bash), or save it as ' +
        '/usr/share/bash-completion/completions/lockwarden. zsh: save it as _lockwarden in ' +
        'a directory of $fpath.',
    ],
    completeOperand: 'shell',
  },
];

const RUN: readonly CommandName[] = ['run'];
const LOOKING: readonly CommandName[] = ['status'];

export const OPTIONS: readonly OptionDef[] = [
  {
    flags: '--root <dir>',
    description: 'lock root for ids (default: $LOCKWARDEN_ROOT, else <tmpdir>/lockwarden)',
    commands: 'all',
    complete: 'directory',
  },
  {
    flags: '--store <url>',
    description:
      'lock ids on a PostgreSQL server instead: postgres://user:pass@host/db or postgresql://… (default: $LOCKWARDEN_STORE)',
    commands: 'all',
    complete: 'none',
  },
  {
    flags: '--namespace <name>',
    description:
      'PostgreSQL namespace, to keep applications apart (default: $LOCKWARDEN_NAMESPACE, else lockwarden)',
    commands: 'all',
    complete: 'none',
  },
  { flags: '--json', description: 'print JSON (run: a conflict, on stderr)', commands: 'all' },
  {
    flags: '--file <path>',
    description: 'lock this file, whatever its name looks like (flock(1) semantics)',
    commands: [...RUN, ...LOOKING],
    complete: 'file',
  },
  { flags: '-s, --shared', description: 'take a shared lock', commands: RUN },
  {
    flags: '-x, --exclusive',
    aliases: ['-e'],
    description: 'take an exclusive lock (the default)',
    commands: RUN,
  },
  {
    flags: '-u, --unlock',
    description: 'drop the lock of a descriptor (FD or --fd) instead of taking one',
    commands: RUN,
  },
  {
    flags: '-n, --nonblock',
    aliases: ['--nb', '--nonblocking', '--no-wait'],
    description: 'give up at once if the lock is held',
    commands: RUN,
  },
  {
    flags: '-w, --wait <seconds>',
    aliases: ['--timeout'],
    description:
      'give up after this many seconds (fractions allowed; 0 is -n); default: wait forever',
    commands: RUN,
    complete: 'none',
  },
  {
    flags: '-E, --conflict-exit-code <code>',
    description: 'exit code when the lock is held (-n, or -w ran out), 0 to 255',
    defaultValue: 1,
    commands: RUN,
    complete: 'none',
  },
  {
    flags: '-c, --command <command>',
    description: 'run one command string through $SHELL -c (default shell: /bin/sh)',
    commands: RUN,
    complete: 'none',
  },
  {
    flags: '-o, --close',
    description:
      'do not pass the lock to CMD: it is released when CMD exits, not when its last child does',
    commands: RUN,
  },
  {
    flags: '-F, --no-fork',
    description:
      'accepted for flock(1): CMD keeps the lock as with -F, but runs as a child (Node.js cannot exec(2) in place)',
    commands: RUN,
  },
  {
    flags: '--fd <number>',
    description: 'lock this inherited descriptor around CMD (the lock stays with the caller)',
    commands: RUN,
    complete: 'none',
  },
  {
    flags: '--verbose',
    description: 'say how long getting the lock took, what timed out, and what runs',
    commands: RUN,
  },
  {
    flags: '--user <name>',
    description: 'name to show as the holder of an id (default: your login name)',
    commands: RUN,
    complete: 'none',
  },
  {
    flags: '--fcntl',
    description: '',
    commands: RUN,
    unsupported:
      'lockwarden takes flock(2) locks only; fcntl(2) OFD locks would not exclude flock(1) or lockwarden users',
  },
  {
    flags: '--start <offset>',
    description: '',
    commands: RUN,
    unsupported: 'lockwarden locks whole files (flock(2)); byte ranges need --fcntl',
  },
  {
    flags: '--length <number>',
    description: '',
    commands: RUN,
    unsupported: 'lockwarden locks whole files (flock(2)); byte ranges need --fcntl',
  },
];

/** The options `command` accepts, program-wide ones first. */
export function optionsOf(command: CommandName | null): OptionDef[] {
  return OPTIONS.filter(
    (o) => o.commands === 'all' || (command !== null && o.commands.includes(command)),
  );
}

/** `-w, --wait <seconds>` → { short: '-w', long: '--wait', value: 'seconds' }. */
export function flagParts(flags: string): { short?: string; long: string; value?: string } {
  const m = /^(?:(-\w),\s*)?(--[\w-]+)(?:\s+<([\w-]+)>)?$/.exec(flags);
  if (m === null) throw new Error(`bad option flags: ${flags}`);
  return {
    long: m[2] as string,
    ...(m[1] === undefined ? {} : { short: m[1] }),
    ...(m[3] === undefined ? {} : { value: m[3] }),
  };
}

/** Every spelling of an option: its short and long flags and its aliases. */
export function spellings(o: OptionDef): string[] {
  const { short, long } = flagParts(o.flags);
  return [...(short === undefined ? [] : [short]), long, ...(o.aliases ?? [])];
}

/** `lockwarden run [options] TARGET …` */
export function usageLine(c: CommandDef): string {
  return `lockwarden ${c.name} [options]${c.operands === '' ? '' : ` ${c.operands}`}`;
}

/** Every option of util-linux flock(1) and what `lockwarden run` does with it (man page, README). */
export const FLOCK_OPTIONS: readonly (readonly [string, string])[] = [
  [
    'FILE | DIRECTORY',
    'the same: a path operand (/, ./, ../) or --file PATH locks that file, created if missing',
  ],
  ['FD (flock 9)', 'the same: lockwarden run 9 locks the inherited descriptor 9 and exits'],
  ['-s, --shared', 'the same'],
  ['-x, -e, --exclusive', 'the same (the default)'],
  ['-u, --unlock', 'the same, for a descriptor (FD or --fd); a usage error with a file or id'],
  ['-n, --nb, --nonblock, --nonblocking', 'the same; also spelled --no-wait'],
  ['-w, --wait, --timeout SECONDS', 'the same; 0 is -n'],
  ['-E, --conflict-exit-code N', 'the same (default 1)'],
  ['-o, --close', 'the same: CMD does not inherit the lock (not supported with --fd)'],
  ['-c, --command CMD', 'the same: $SHELL -c CMD (else /bin/sh), before or after the operand'],
  [
    '-F, --no-fork',
    'accepted: CMD holds the lock as it would, but runs as a child (Node.js cannot exec(2) in place); signals are passed on',
  ],
  ['--fd N', 'the same (util-linux 2.40): lock descriptor N, then run CMD, which gets it as N'],
  ['--verbose', 'the same facts on stderr (flock prints them on stdout), naming the lock'],
  ['--fcntl, --start, --length', 'a usage error: lockwarden takes flock(2) locks only'],
  ['-h, --help; -V, --version', 'the same'],
];
