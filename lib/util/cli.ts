/**
 * The command-line contract shared by every task: flags parsed
 * strictly, human progress on stderr, one clear line and a non-zero exit on
 * bad input.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";
import { UserError } from "./errors.ts";

/**
 * Flag definitions in `node:util` parseArgs' shape, each with its `help`: what it means and its default, as
 * `--help` prints it.
 */
export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; default?: string | boolean; multiple?: boolean; help?: string }
>;

/** Thrown when a task is asked for `--help`: {@link runTask} prints the text and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly text: string) {
    super("help requested");
  }
}

/** The `--help` text of a task: its usage, then every flag with its meaning and default. */
export function helpText(usage: string, flags: FlagSpec, about = ""): string {
  const names = Object.entries(flags).map(([name, f]) => [`--${name}${f.type === "string" ? " VALUE" : ""}`, f]);
  const width = Math.max(...names.map(([n]) => (n as string).length), 6);
  const lines = names.map(([n, f]) => `  ${(n as string).padEnd(width)}  ${(f as { help?: string }).help ?? ""}`);
  return [
    `usage: ${usage}`,
    ...(about ? ["", about] : []),
    "",
    "flags:",
    ...lines,
    `  ${"--help".padEnd(width)}  this text`,
  ]
    .join("\n");
}

/**
 * Parses `args` strictly: an unknown flag or a missing value is a {@link UserError}; `--help` or `-h` throws
 * {@link HelpRequested}. A negative number after a flag that takes a value is that value (`--lr -1`), not a flag.
 */
export function parseFlags<T extends FlagSpec>(
  args: string[],
  flags: T,
  usage: string,
  about = "",
): {
  values: { [K in keyof T]: T[K]["type"] extends "boolean" ? boolean : string | undefined };
  positionals: string[];
} {
  if (args.includes("--help") || args.includes("-h")) throw new HelpRequested(helpText(usage, flags, about));
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") && !args[i].includes("=") ? args[i].slice(2) : null;
    if (name && flags[name]?.type === "string" && /^-\d|^-\.\d|^-inf/i.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else joined.push(args[i]);
  }
  const options = Object.fromEntries(Object.entries(flags).map(([k, { help: _, ...o }]) => [k, o]));
  try {
    // deno-lint-ignore no-explicit-any
    const r = nodeParseArgs({ args: joined, options: options as any, allowPositionals: true, strict: true });
    // deno-lint-ignore no-explicit-any
    return r as any;
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0].replace(/\. To specify.*$/, "");
    throw new UserError(`${msg} (usage: ${usage}; --help lists every flag)`);
  }
}

/**
 * A flag's text as a number when it is written in decimal (`12`, `-0.5`, `1e-3`), else NaN: `Number` would also take
 * `0x10`, `0b11`, `Infinity` and blanks, which no flag means.
 */
export function decimal(text: string): number {
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim()) ? Number(text) : NaN;
}

/** A flag's value as an integer within [min, max], or a {@link UserError} naming the flag. */
export function intFlag(
  name: string,
  value: string | undefined,
  def: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return def;
  const n = decimal(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UserError(
      `--${name} ${value}: expected an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? "inf" : max}]`,
    );
  }
  return n;
}

/**
 * Runs a task's main function: a {@link UserError} becomes one line on stderr
 * and exit code 2; any other error is a bug, shown with its stack, exit 1.
 */
export async function runTask(main: (args: string[]) => Promise<void>): Promise<void> {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(e.text);
      Deno.exit(0);
    }
    if (e instanceof UserError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    console.error(e);
    Deno.exit(1);
  }
}

/** A progress line on stderr, redrawn in place on a terminal. */
export class Progress {
  #label: string;
  #total: number;
  #t0 = performance.now();
  #last = 0;
  #tty = Deno.stderr.isTerminal();
  /**
   * The units done at the first report, and when (a resumed run starts past 0): the rate, and so the ETA, counts only
   * the work done since, at the speed it is done now.
   */
  #start: { done: number; at: number } | null = null;

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  /** The time left when `done` of `total` units are done after `secs` seconds, `start` of them before this began. */
  static eta(done: number, total: number, start: number, secs: number): number {
    const rate = (done - start) / secs;
    return rate > 0 ? (total - done) / rate : Infinity;
  }

  /** Changes the number of units to do (a time budget planned again). */
  setTotal(total: number): void {
    this.#total = total;
  }

  /** Reports `done` of total units, with `extra` text; throttled to 5 per second. */
  update(done: number, extra = ""): void {
    const now = performance.now();
    this.#start ??= { done, at: now };
    if (done < this.#total && now - this.#last < (this.#tty ? 200 : 5000)) return;
    this.#last = now;
    const frac = this.#total > 0 ? Math.min(1, done / this.#total) : 0;
    const width = 24, filled = Math.round(frac * width);
    const secs = (now - this.#t0) / 1000;
    const left = Progress.eta(done, this.#total, this.#start.done, (now - this.#start.at) / 1000);
    const eta = frac < 1 && Number.isFinite(left) ? ` eta ${fmtSecs(left)}` : "";
    const line = `${this.#label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${
      (100 * frac).toFixed(1)
    }% ${extra} ${fmtSecs(secs)}${eta}`;
    const enc = new TextEncoder();
    Deno.stderr.writeSync(enc.encode(this.#tty ? `\r\x1b[K${line}` : `${line}\n`));
    if (this.#tty && done >= this.#total) Deno.stderr.writeSync(enc.encode("\n"));
  }
}

/**
 * A progress callback for tasks: one {@link Progress} line per label (a library function reports `(label, done,
 * total)`; only tasks draw), made by `bar`.
 */
export function progressBars(
  bar: (label: string, total: number) => Pick<Progress, "update"> = (label, total) => new Progress(label, total),
): (label: string, done: number, total: number, extra?: string) => void {
  const bars = new Map<string, { bar: Pick<Progress, "update">; done: number }>();
  return (label, done, total, extra = "") => {
    let b = bars.get(label);
    // A count that goes back is the same work again (the next point of a sweep, the next evaluation): a new bar, with
    // its own clock.
    if (!b || done < b.done) bars.set(label, b = { bar: bar(label, total), done });
    b.done = done;
    b.bar.update(done, extra);
  };
}

/** Seconds as `1h02m`, `3m05s` or `4.2s`. */
export function fmtSecs(s: number): string {
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${s.toFixed(1)}s`;
}
