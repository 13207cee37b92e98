/**
 * The man page, lockwarden(1), in roff (man macros), made from the same tables as the help
 * and the completions. `npm run build` writes it to man/lockwarden.1 (package.json `man`).
 */
import { EXIT_STATUS } from './exit.js';
import {
  COMMANDS,
  FLOCK_OPTIONS,
  flagParts,
  OPERAND_RULE,
  type OptionDef,
  optionsOf,
  spellings,
  usageLine,
} from './options.js';

/** Text made safe for roff: backslashes, hyphens as minus signs, no control line by accident. */
function roff(text: string): string {
  const escaped = text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(
      /[^\x20-\x7e]/g,
      (c) => `\\[u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}]`,
    );
  return /^[.']/.test(escaped) ? `\\&${escaped}` : escaped;
}

function optionItem(o: OptionDef): string {
  const { value } = flagParts(o.flags);
  const names = spellings(o)
    .map((s) => `\\fB${roff(s)}\\fR`)
    .join(', ');
  const def = o.defaultValue === undefined ? '' : ` (default: ${o.defaultValue})`;
  return `.TP\n${names}${value === undefined ? '' : ` \\fI${roff(value)}\\fR`}\n${roff(o.description + def)}`;
}

function listed(name: Parameters<typeof optionsOf>[0]): OptionDef[] {
  return optionsOf(name).filter((o) => o.unsupported === undefined);
}

export function manPage(version: string): string {
  const global = listed(null);
  const own = (name: Parameters<typeof optionsOf>[0]) =>
    listed(name).filter((o) => !global.includes(o));
  const lines = [
    `.TH LOCKWARDEN 1 "" "lockwarden ${roff(version)}" "User Commands"`,
    '.SH NAME',
    'lockwarden \\- named shared/exclusive locks for scripts, a drop\\-in for flock(1)',
    '.SH SYNOPSIS',
    ...COMMANDS.flatMap((c) => ['.PP', roff(usageLine(c))]),
    '.SH DESCRIPTION',
    roff(
      'lockwarden takes flock(2) locks on lock files and shows who holds them. A lock is named by an id (its file lives in the lock root) or by a file path, which is locked exactly as flock(1) locks it, so the two tools exclude each other.',
    ),
    '.PP',
    roff(OPERAND_RULE),
    '.SH COMMANDS',
    ...COMMANDS.flatMap((c) => [
      '.TP',
      `\\fB${c.name}\\fR${c.operands === '' ? '' : ` ${roff(c.operands)}`}`,
      `${roff(c.summary)}.`,
      ...c.details.flatMap((d) => ['.IP', roff(d)]),
    ]),
    '.SH OPTIONS',
    roff('Accepted before the command or after it:'),
    ...global.map(optionItem),
    '.TP',
    '\\fB\\-h\\fR, \\fB\\-\\-help\\fR',
    'show the help of lockwarden or of a command',
    '.TP',
    '\\fB\\-V\\fR, \\fB\\-\\-version\\fR',
    'print the version (before the command only)',
    ...COMMANDS.flatMap((c) =>
      own(c.name).length === 0
        ? []
        : ['.SS', `Options of \\fB${c.name}\\fR`, ...own(c.name).map(optionItem)],
    ),
    '.SH COMING FROM FLOCK(1)',
    roff('Every option of util-linux flock(1), and what lockwarden run does with it:'),
    ...FLOCK_OPTIONS.flatMap(([flock, ours]) => ['.TP', `\\fB${roff(flock)}\\fR`, roff(ours)]),
    '.SH EXIT STATUS',
    ...EXIT_STATUS.flatMap(([code, meaning]) => ['.TP', `\\fB${roff(code)}\\fR`, roff(meaning)]),
    '.SH ENVIRONMENT',
    ...[
      ['LOCKWARDEN_ROOT', 'the lock root for ids when --root is not given'],
      ['LOCKWARDEN_STORE', 'a postgres:// URL: lock ids on that server when --store is not given'],
      ['LOCKWARDEN_NAMESPACE', 'the PostgreSQL namespace when --namespace is not given'],
      ['SHELL', 'the shell of -c (default /bin/sh)'],
    ].flatMap(([name, what]) => ['.TP', `\\fB${name}\\fR`, roff(what as string)]),
    '.SH FILES',
    '.TP',
    '\\fI<tmpdir>/lockwarden/.locks/ID.lock\\fR',
    roff(
      'the lock file of id ID in the default root (mode 1777, shared by every user), so flock <root>/.locks/ID.lock CMD and lockwarden run ID -- CMD exclude each other',
    ),
    '.SH EXAMPLES',
    ...[
      [
        "lockwarden run -n /var/lock/job -c 'make && deploy'",
        "as flock -n /var/lock/job -c 'make && deploy'",
      ],
      [
        'lockwarden run -w 30 deploy -- ./deploy.sh',
        'wait up to 30 s for the id deploy, then run the script',
      ],
      ['exec 9>/var/lock/job; lockwarden run -n 9 || exit 1', "lock the shell's own descriptor 9"],
      ['lockwarden status --file /var/lock/job', 'who holds that file'],
    ].flatMap(([cmd, what]) => ['.TP', `\\fB${roff(cmd as string)}\\fR`, roff(what as string)]),
    '.SH SEE ALSO',
    '\\fBflock\\fR(1), \\fBflock\\fR(2)',
  ];
  return `${lines.join('\n')}\n`;
}
