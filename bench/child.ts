/**
 * The parent's handle on one bench server process (bench/ipc-child.ts is the other end): fork it,
 * wait until it listens, ask for its CPU time, stop it (and only it: by its own pid when it does not
 * stop by itself).
 *
 * Every child alive is also kept in a registry, so that a measured window can tell the CPU of the
 * bench's own processes, busy or idle, from other load on the machine (bench/measure.ts).
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { ChildMessage } from './ipc-child.ts';

const START_TIMEOUT_MS = 30_000;
/** Long enough for a server to drain and for `--cpu-prof` to write its profile. */
const STOP_TIMEOUT_MS = 10_000;
const CPU_ANSWER_TIMEOUT_MS = 5_000;

export interface ServerChild {
  /** Which hop this is, e.g. `secured/gateway`. */
  name: string;
  pid: number;
  /** What the child said when it was ready (e.g. the private key files of the clients). */
  info: Record<string, unknown>;
  /** CPU seconds (user + system, all threads) the child has used so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export interface ChildSpec {
  name: string;
  /** The module to fork. */
  entry: string;
  args: string[];
  /** Extra Node flags, e.g. `--cpu-prof`. */
  execArgv?: string[];
}

const live = new Set<ServerChild>();

/** Every bench server process now running. */
export const liveChildren = (): ServerChild[] => [...live];

function nextMessage(child: ChildProcess, name: string, type: ChildMessage['type'], timeoutMs: number) {
  return new Promise<ChildMessage>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${name}: no ${type} answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: ChildMessage) => {
      if (message.type === 'error') {
        cleanup();
        reject(new Error(`${name} failed: ${message.message}`));
      } else if (message.type === type) {
        cleanup();
        resolve(message);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${name} exited (${code}) before its ${type} answer`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export async function startChild(spec: ChildSpec): Promise<ServerChild> {
  const child = fork(spec.entry, spec.args, {
    execArgv: [...process.execArgv, ...(spec.execArgv ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ready: ChildMessage;
  try {
    ready = await nextMessage(child, spec.name, 'ready', START_TIMEOUT_MS);
  } catch (error) {
    if (child.exitCode === null) child.kill();
    throw error;
  }
  // A CPU question is answered in order: one at a time, so that answers cannot be swapped.
  let queue: Promise<unknown> = Promise.resolve();
  const handle: ServerChild = {
    name: spec.name,
    pid: child.pid!,
    info: ready.type === 'ready' ? ready.info : {},
    cpuSeconds() {
      const asked = queue.then(async () => {
        const answer = nextMessage(child, spec.name, 'cpu', CPU_ANSWER_TIMEOUT_MS);
        child.send({ type: 'cpu' });
        const message = await answer;
        if (message.type !== 'cpu') throw new Error(`${spec.name}: unexpected answer`);
        return (message.usage.user + message.usage.system) / 1e6;
      });
      queue = asked.catch(() => {});
      return asked;
    },
    async stop() {
      live.delete(handle);
      if (child.exitCode === null && child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => {
        if (child.exitCode === null) child.kill();
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(handle);
  return handle;
}

/** Stops all of `children` (each by its own handle), whatever happens to the others. */
export async function stopAll(children: readonly ServerChild[]): Promise<void> {
  await Promise.allSettled(children.map((child) => child.stop()));
}
