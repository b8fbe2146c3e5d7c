/**
 * The stack under test as four real processes, `gatehouse serve <component> --config FILE`, each
 * under an open-file limit of 4,096 (`prlimit --nofile=4096:4096`), inside the scenario's own network
 * namespace (so the default ports 9000, 8000, 8001 and 8002 are free in every run).
 *
 * The configuration is the built-in one with only ports, URLs and the data directory set
 * (src/launcher/loopback-config.ts, every URL on 127.0.0.1), plus the deviations a scenario declares
 * (`deviations`): they are printed with its results and listed in docs/performance.md.
 *
 * Each process's stdout and stderr go to `<dir>/<component>.log` and through line watchers, so a
 * scenario can wait for a line and count log records (the gateway's request lines, drain summaries).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, type WriteStream, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  loopbackStackSections,
  loopbackUrls,
  type StackPorts,
} from '../../../src/launcher/loopback-config.ts';

export const COMPONENTS = ['authorization-server', 'apis', 'mcp-server', 'gateway'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

/** The built-in ports: free in a network namespace of its own. */
export const DEFAULT_PORTS: StackPorts = {
  authorizationServer: 9000,
  gateway: 8000,
  mcpServer: 8001,
  apis: 8002,
};
export const OPEN_FILE_LIMIT = 4096;

const CLI = path.resolve(import.meta.dirname, '../../../bin/gatehouse.js');
const READY: Record<ComponentName, RegExp> = {
  'authorization-server': /Authorization server ready at /,
  apis: /Example APIs ready at /,
  'mcp-server': /MCP server ready at /,
  gateway: /Gateway ready at /,
};
const START_TIMEOUT_MS = 30_000;

/** A setting that differs from the built-in configuration, and why. */
export interface Deviation {
  setting: string;
  value: unknown;
  why: string;
}

/** The domain whose every address may sign in (`authorizationServer.users.domains`). */
export const LOAD_TEST_DOMAIN = 'load-test.example';

/**
 * Every scenario signs in many different people (one per simulated agent), so it approves a whole
 * domain, as an organization approves its own; the built-in configuration approves two example users.
 */
export const APPROVED_DOMAIN: Deviation = {
  setting: 'authorizationServer.users.domains',
  value: [{ domain: LOAD_TEST_DOMAIN, claims: { region: 'eu', role: 'trader' } }],
  why: 'many distinct users sign in (one per agent), traders all (some place orders); the built-in list has two example users',
};

type Section = Record<string, unknown>;

/** Sets `value` at a dotted path inside `sections` (creating objects on the way). */
function apply(sections: Record<string, Section>, setting: string, value: unknown): void {
  const keys = setting.split('.');
  let node: Section = sections;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Section;
  }
  node[keys.at(-1)!] = value;
}

export interface Line {
  component: ComponentName;
  text: string;
}

/** Where a component process runs: its folder (logs, cwd), its configuration file, extra environment. */
export interface ProcessPlace {
  dir: string;
  configFile: string;
  env?: Record<string, string>;
}

export class ComponentProcess {
  child: ChildProcess | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({
    code: null,
    signal: null,
  });
  /** Every line since the last start (bounded to the last 2,000), for failure reports and drain summaries. */
  readonly recent: string[] = [];
  private readonly log: WriteStream;
  private readonly watchers = new Set<(line: string) => void>();
  starts = 0;
  readonly name: ComponentName;
  private readonly stack: ProcessPlace;
  private readonly limitOpenFiles: boolean;

  /**
   * `label` names the log file (`<dir>/<label>.log`), for several instances of one component;
   * `limitOpenFiles: false` starts it without prlimit (a test that does not measure load).
   */
  constructor(
    name: ComponentName,
    stack: ProcessPlace,
    options: { label?: string; limitOpenFiles?: boolean } = {},
  ) {
    this.name = name;
    this.stack = stack;
    this.limitOpenFiles = options.limitOpenFiles ?? true;
    this.log = createWriteStream(path.join(stack.dir, `${options.label ?? name}.log`), { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child && this.child.exitCode === null && this.child.signalCode === null
      ? this.child.pid
      : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Calls `watcher` with every line the process writes from now on; returns the unsubscribe. */
  onLine(watcher: (line: string) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** The next line matching `pattern` (from now on), or a timeout error naming `what`. */
  waitForLine(pattern: RegExp, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: timed out waiting for ${what}`));
      }, timeoutMs);
      const off = this.onLine((line) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        off();
        resolve(line);
      });
    });
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.starts += 1;
    this.recent.length = 0;
    this.log.write(`--- start ${this.starts} at ${new Date().toISOString()}\n`);
    const ready = this.waitForLine(READY[this.name], START_TIMEOUT_MS, 'its ready line');
    // prlimit execs the command, so the child's pid is the server's own (its RSS is what is sampled).
    const command = [process.execPath, CLI, 'serve', this.name, '--config', this.stack.configFile];
    const child = this.limitOpenFiles
      ? spawn('prlimit', [`--nofile=${OPEN_FILE_LIMIT}:${OPEN_FILE_LIMIT}`, '--', ...command], {
          cwd: this.stack.dir,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.stack.env },
        })
      : spawn(command[0]!, command.slice(1), {
          cwd: this.stack.dir,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...this.stack.env },
        });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [child.stdout!, child.stderr!]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        this.log.write(chunk);
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const line of lines) this.line(line);
      });
    }
    const failed = this.exited.then(({ code, signal }) => {
      throw new Error(
        `${this.name} exited (${code ?? signal}) before it was ready:\n${this.recent.slice(-20).join('\n')}`,
      );
    });
    await Promise.race([ready, failed]);
  }

  private line(line: string): void {
    this.recent.push(line);
    if (this.recent.length > 2000) this.recent.splice(0, this.recent.length - 2000);
    for (const watcher of this.watchers) watcher(line);
  }

  /** Sends `signal` to this process (by its pid) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000) {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill(signal);
    const timer = setTimeout(() => {
      if (this.running) child.kill('SIGKILL');
    }, timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  async closeLog(): Promise<void> {
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

export class Stack {
  readonly urls = loopbackUrls(DEFAULT_PORTS);
  readonly dataDir: string;
  readonly configFile: string;
  readonly components: Record<ComponentName, ComponentProcess>;
  readonly dir: string;
  readonly deviations: Deviation[];

  constructor(dir: string, deviations: Deviation[]) {
    this.dir = dir;
    this.deviations = deviations;
    mkdirSync(dir, { recursive: true });
    this.dataDir = path.join(dir, 'data');
    this.configFile = path.join(dir, 'gatehouse.json');
    const sections = loopbackStackSections(DEFAULT_PORTS) as Record<string, Section>;
    for (const deviation of deviations) apply(sections, deviation.setting, deviation.value);
    // JSON is YAML; the loader takes either.
    writeFileSync(this.configFile, JSON.stringify({ dataDir: './data', ...sections }, null, 2));
    this.components = Object.fromEntries(
      COMPONENTS.map((name) => [name, new ComponentProcess(name, this)]),
    ) as Record<ComponentName, ComponentProcess>;
  }

  /** In dependency order: the authorization server creates the internal clients' secrets. */
  async start(): Promise<void> {
    for (const name of COMPONENTS) await this.components[name].start();
  }

  /** The secret of an internal client (generated by the authorization server in the data directory). */
  secret(clientId: 'gatehouse-gateway' | 'gatehouse-mcp-server'): string {
    return readFileSync(path.join(this.dataDir, 'secrets', `${clientId}.secret`), 'utf8').trim();
  }

  pids(): Partial<Record<ComponentName, number>> {
    const pids: Partial<Record<ComponentName, number>> = {};
    for (const name of COMPONENTS) {
      const pid = this.components[name].pid;
      if (pid !== undefined) pids[name] = pid;
    }
    return pids;
  }

  /** SIGTERM to each, the gateway first; SIGKILL for whatever does not stop. */
  async close(): Promise<void> {
    for (const name of [...COMPONENTS].reverse()) await this.components[name].stop('SIGTERM', 20_000);
    for (const name of COMPONENTS) await this.components[name].closeLog();
  }
}
