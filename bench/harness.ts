/**
 * Plumbing shared by the benches that run as several processes of one file
 * (an orchestrator, servers, load generators): options, forking a role,
 * messages between roles, and making sure no child outlives a run.
 *
 * A bench file is forked with a role as its first argument; fork() reuses
 * process.execArgv, so a child runs under tsx too.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// ---------------------------------------------------------------------------
// Options.

/**
 * The value of `--name value` or `--name=value` on the command line, else of
 * the environment variable `BENCH_NAME` (dashes as underscores). A bare
 * `--name` followed by another flag or nothing reads as `'true'`.
 */
export function readOption(name: string): string | undefined {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === `--${name}`) return args[i + 1]?.startsWith('--') === false ? args[i + 1] : 'true';
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
}

/** A number option within `[min, max]`, or `fallback` when not given; anything else throws. */
export function numberOption(name: string, fallback: number, min: number, max: number): number {
  const raw = readOption(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new Error(`--${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** An on/off option: given (`--name`, `--name=1`, `BENCH_NAME=yes`) and not `false` or `0`. */
export function flagOption(name: string): boolean {
  const raw = readOption(name);
  return raw !== undefined && raw !== 'false' && raw !== '0';
}

// ---------------------------------------------------------------------------
// Child processes.

const children = new Set<ChildProcess>();

/** Forks `file` (a bench file) with `args`, the role first; it is killed by {@link killChildren}. */
export function spawnRole(file: string, args: string[]): ChildProcess {
  const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every child {@link spawnRole} started that is still running. */
export function killChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** What a role sends its parent when it fails; {@link nextMessage} turns it into a rejection. */
export interface ErrorReport {
  type: 'error';
  message: string;
}

/**
 * The next IPC message of `type` from `child`. Rejects if the child reports
 * `{ type: 'error' }`, exits first, or sends nothing of the kind within
 * `timeoutMs` (the child is then killed).
 */
export function nextMessage<T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: { type?: string; message?: string }) => {
      if (m.type === 'error') {
        done();
        reject(new Error(`child failed: ${m.message}`));
      } else if (m.type === type) {
        done();
        resolve(m as T);
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`child exited before '${type}' (code ${code}, signal ${signal})`));
    };
    const timer = setTimeout(() => {
      done();
      child.kill('SIGKILL');
      reject(new Error(`no '${type}' from the child within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Resolves when `child` has exited; SIGKILLs it if that takes longer than `timeoutMs`. */
export function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Sends `message` to the parent process, if it is still there (a parent that is gone is no error). */
export function report<T extends { type: string }>(message: T): void {
  if (process.connected) process.send!(message, undefined, {}, () => {});
}

/**
 * Runs a bench file's `main`. In a child (a role), losing the parent ends the
 * process and its own children; in the orchestrator, Ctrl-C or SIGTERM kills
 * every child. A failure is reported to the parent (`{ type: 'error' }`) or
 * printed, and the process exits 1 shortly after (sockets or timers may still
 * be open in a failed run).
 */
export function runMain(main: () => Promise<unknown>): void {
  if (process.send) {
    process.once('disconnect', () => {
      killChildren();
      process.exit(0);
    });
  } else {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        killChildren();
        process.exit(130);
      });
    }
  }
  main()
    .catch((error: unknown) => {
      if (process.send) report({ type: 'error', message: error instanceof Error ? error.message : String(error) });
      else console.error(error);
      killChildren();
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 100).unref();
    })
    .finally(() => {
      if (!process.send) killChildren();
    });
}

// ---------------------------------------------------------------------------
// Small helpers.

/** `gc()`, exposed at run time so that no node flag is needed. */
export function exposeGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Polls `test` every 20 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A `ws` client's `generateMask` that leaves the mask all zeros, which `ws`
 * then skips applying (the server unmasks either way): a load generator that
 * masks nothing spends its CPU on sockets.
 */
export const zeroMask = (mask: Uint8Array): void => void mask.fill(0);

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
