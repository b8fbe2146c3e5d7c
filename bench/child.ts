/**
 * The parent's handle on a bench/server-process.ts child: start it and wait until it listens, ask
 * for its CPU time, stop it (and only it: by its own pid if it does not stop by itself).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type BenchPorts, type BenchUrls, freePorts, makeDataDir, urlsFor } from './config.ts';
import type { ChildMessage, ServerRole } from './server-process.ts';

const ENTRY = fileURLToPath(new URL('./server-process.ts', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export interface ServerChild {
  role: ServerRole;
  urls: BenchUrls;
  dataDir: string;
  privateKeyFiles: Record<string, string>;
  /** CPU seconds (user + system, all threads) the child has used so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export interface ChildOptions {
  storage?: 'sqlite' | 'memory';
  /** Extra Node flags for the child, e.g. `--cpu-prof`. */
  execArgv?: string[];
}

function nextMessage(child: ChildProcess, type: ChildMessage['type'], timeoutMs: number) {
  return new Promise<ChildMessage>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`the ${type} answer of the server process did not come in ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: ChildMessage) => {
      if (message.type === 'error') {
        cleanup();
        reject(new Error(`server process failed: ${message.message}`));
      } else if (message.type === type) {
        cleanup();
        resolve(message);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`server process exited (${code}) before its ${type} answer`));
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

export async function startServerChild(role: ServerRole, options: ChildOptions = {}): Promise<ServerChild> {
  const ports: BenchPorts = await freePorts();
  const dataDir = makeDataDir();
  const child = fork(ENTRY, [role, JSON.stringify(ports), dataDir, options.storage ?? 'sqlite'], {
    execArgv: [...process.execArgv, ...(options.execArgv ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ready: ChildMessage;
  try {
    ready = await nextMessage(child, 'ready', START_TIMEOUT_MS);
  } catch (error) {
    if (child.exitCode === null) child.kill();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    role,
    urls: urlsFor(ports),
    dataDir,
    privateKeyFiles: ready.type === 'ready' ? ready.privateKeyFiles : {},
    async cpuSeconds() {
      const answer = nextMessage(child, 'cpu', 5_000);
      child.send({ type: 'cpu' });
      const message = await answer;
      if (message.type !== 'cpu') throw new Error('unexpected answer');
      return (message.usage.user + message.usage.system) / 1e6;
    },
    async stop() {
      if (child.exitCode === null && child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => {
        if (child.exitCode === null) child.kill();
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
