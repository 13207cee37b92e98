/**
 * `lockwarden completion bash|zsh`: static completion scripts made from the table in
 * options.ts. Static rather than a completer that calls back into lockwarden at each TAB
 * (tabtab, omelette): no Node.js start-up per keystroke, nothing to install in rc files.
 */
import {
  COMMANDS,
  type CommandName,
  flagParts,
  type OptionDef,
  optionsOf,
  spellings,
} from './options.js';

const listed = (name: CommandName | null): OptionDef[] =>
  optionsOf(name).filter((o) => o.unsupported === undefined);

/** Single-quoted for a shell: 'it'\''s'. */
function quoted(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function bash(): string {
  const valued = (name: CommandName | null) =>
    listed(name).filter((o) => flagParts(o.flags).value !== undefined);
  const all = [null, ...COMMANDS.map((c) => c.name)] as const;
  const takesValue = new Map<string, OptionDef['complete']>();
  for (const name of all)
    for (const o of valued(name)) for (const s of spellings(o)) takesValue.set(s, o.complete);
  const cases = (kind: OptionDef['complete']) =>
    [...takesValue]
      .filter(([, c]) => c === kind)
      .map(([s]) => s)
      .join('|');
  const words = (name: CommandName | null) =>
    [
      ...listed(name).flatMap(spellings),
      '-h',
      '--help',
      ...(name === null ? ['-V', '--version'] : []),
    ].join(' ');
  const names = COMMANDS.map((c) => c.name).join(' ');
  return `# bash completion for lockwarden; made by: lockwarden completion bash
_lockwarden() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local cmd='' i operands=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
      ${cases('directory') || '--never'}|${cases('file') || '--never'}|${cases('none') || '--never'}) ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=\${COMP_WORDS[i]}; else ((operands++)); fi ;;
    esac
  done
  case $prev in
    ${cases('directory')}) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    ${cases('file')}) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    ${cases('none')}) COMPREPLY=(); return ;;
  esac
  local opts
  case $cmd in
${COMMANDS.map((c) => `    ${c.name}) opts=${quoted(words(c.name))} ;;`).join('\n')}
    *) opts=${quoted(words(null))} ;;
  esac
  if [[ $cur == -* && $operands -eq 0 ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    return
  fi
  case $cmd in
    '') mapfile -t COMPREPLY < <(compgen -W ${quoted(names)} -- "$cur") ;;
    completion) mapfile -t COMPREPLY < <(compgen -W 'bash zsh' -- "$cur") ;;
    run) if ((operands == 1)); then mapfile -t COMPREPLY < <(compgen -c -- "$cur"); else mapfile -t COMPREPLY < <(compgen -f -- "$cur"); fi ;;
    status) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    *) COMPREPLY=() ;;
  esac
}
complete -o default -F _lockwarden lockwarden
`;
}

/** Text inside an _arguments spec: `[`, `]`, `:` and `\\` escaped. */
function zshText(text: string): string {
  return text.replace(/[\\[\]:]/g, (c) => `\\${c}`);
}

function zshSpecs(name: CommandName | null): string[] {
  return listed(name).map((o) => {
    const { value } = flagParts(o.flags);
    const forms = spellings(o);
    const action =
      value === undefined
        ? ''
        : `:${value}:${o.complete === 'directory' ? '_files -/' : o.complete === 'file' ? '_files' : ' '}`;
    const excl = forms.length > 1 ? `(${forms.join(' ')})` : '';
    const names = forms.length > 1 ? `{${forms.join(',')}}` : (forms[0] as string);
    return `${quoted(excl)}${names}${quoted(`[${zshText(o.description)}]${action}`)}`;
  });
}

function zsh(): string {
  const describe = COMMANDS.map((c) => quoted(`${c.name}:${zshText(c.summary)}`)).join(' ');
  const operands: Record<CommandName, string[]> = {
    run: [quoted('1:lock (file, descriptor or id):_files'), quoted('*::command:_normal')],
    status: [quoted('1:lock (file or id):_files')],
    list: [],
    clean: [],
    metrics: [],
    completion: [quoted('1:shell:(bash zsh)')],
  };
  return `#compdef lockwarden
# zsh completion for lockwarden; made by: lockwarden completion zsh
_lockwarden() {
  local curcontext=$curcontext state line
  local -a commands
  commands=(${describe})
  _arguments -C \\
    ${zshSpecs(null).join(' \\\n    ')} \\
    '(- *)'{-h,--help}'[show help]' '(- *)'{-V,--version}'[show the version]' \\
    '1:command:->command' '*::argument:->argument'
  case $state in
    command) _describe -t commands 'lockwarden command' commands ;;
    argument)
      case $words[1] in
${COMMANDS.map(
  (c) => `        ${c.name}) _arguments ${[...zshSpecs(c.name), ...operands[c.name]].join(' ')} ;;`,
).join('\n')}
      esac ;;
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _lockwarden "$@"; else compdef _lockwarden lockwarden; fi
`;
}

export function completionScript(shell: 'bash' | 'zsh'): string {
  return shell === 'bash' ? bash() : zsh();
}
