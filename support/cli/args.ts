/**
 * One way for every command to read its arguments (node:util parseArgs) and to answer --help:
 * the usage on stdout, exit 0, nothing else done. An unknown option, a missing value or a stray
 * argument is bad input: a UsageError (exit 2) naming it, with the command's usage line as hint.
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';

export interface CommandSpec<T extends ParseArgsOptionsConfig> {
  /** As the user types it, e.g. `npm run sweep --`. */
  command: string;
  /** The synopsis line, e.g. `[--run-id ID] [--dry-run]`. */
  synopsis: string;
  /** What the command does and what each option means, printed under the synopsis by --help. */
  description: string;
  options: T;
  /** Names of positional arguments, e.g. ['verb'] (none when the command takes none). */
  positionals?: string[];
}

export type Parsed<T extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: T; strict: true; allowPositionals: true }>
>;

/** The full --help text of a command. */
export function usageText(spec: CommandSpec<ParseArgsOptionsConfig>): string {
  return `usage: ${spec.command} ${spec.synopsis}\n\n${spec.description.trim()}\n`;
}

function shortUsage(spec: CommandSpec<ParseArgsOptionsConfig>): string {
  return `usage: ${spec.command} ${spec.synopsis} (--help for more)`;
}

/** Why parseArgs refused, in one short line: its own messages add advice that does not apply here. */
function describeParseError(e: Error & { code?: string }): string {
  const quoted = /'([^']+)'/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted ?? e.message}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `option ${quoted?.split(' ')[0] ?? ''} ${/argument missing/.test(e.message) ? 'needs a value' : 'takes no value'}`.replace(
        /\s+/g,
        ' ',
      );
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${quoted ?? e.message}`;
    default:
      return e.message.split('\n')[0] ?? String(e);
  }
}

/**
 * Parses `argv` for the command; undefined when --help (or -h) was asked for, after printing the
 * usage. Throws a UsageError for anything it does not know.
 */
export function parseCommand<T extends ParseArgsOptionsConfig>(
  spec: CommandSpec<T>,
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Parsed<T> | undefined {
  const generic = spec as unknown as CommandSpec<ParseArgsOptionsConfig>;
  if (argv.includes('--help') || argv.includes('-h')) {
    out(usageText(generic));
    return undefined;
  }
  let parsed: Parsed<T>;
  try {
    parsed = parseArgs({ args: argv, options: spec.options, strict: true, allowPositionals: true }) as Parsed<T>;
  } catch (e) {
    throw new UsageError(describeParseError(e as Error & { code?: string }), shortUsage(generic));
  }
  const allowed = spec.positionals?.length ?? 0;
  if (parsed.positionals.length > allowed) {
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[allowed])}`, shortUsage(generic));
  }
  return parsed;
}

/** A positive integer option value, or a UsageError naming the option. */
export function positiveInt(value: string, option: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(
      `${option} ${JSON.stringify(value)} is not a whole number from 1 to ${max}`,
      `give ${option} a number, e.g. ${option} 3`,
    );
  return n;
}
