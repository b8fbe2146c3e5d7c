/**
 * Starting one hop of a benchmark chain as a process of its own: a Gatehouse component or a hop of
 * the bench's unsecured chain (bench/server-process.ts), or a hop of the independent baseline
 * (bench/baseline/start.ts). With `profileDir`, the process writes a V8 CPU profile into
 * `<profileDir>/<hop>` when it stops (`--cpu-prof`), one directory per hop so the summarizer
 * (bench/profile-summary.ts) can tell them apart.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ServerChild, startChild } from './child.ts';
import type { BenchPorts, BenchStartOptions } from './config.ts';
import { hopDirName } from './profile-windows.ts';
import type { GatehouseRole } from './server-process.ts';

const SERVER_PROCESS = fileURLToPath(new URL('./server-process.ts', import.meta.url));
const BASELINE_START = fileURLToPath(new URL('./baseline/start.ts', import.meta.url));

export type BaselineRole = 'apis' | 'mcp-server' | 'proxy' | 'authorization-server';

export interface HopOptions {
  /** Where CPU profiles go (`--profile`); none when undefined. */
  profileDir: string | undefined;
}

function execArgv(name: string, options: HopOptions): string[] {
  if (!options.profileDir) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${path.join(options.profileDir, hopDirName(name))}`];
}

/** A Gatehouse hop (or an unsecured-chain hop) on the chain's ports and data directory. */
export function startGatehouseHop(
  name: string,
  role: GatehouseRole,
  chain: { ports: BenchPorts; dataDir: string },
  options: HopOptions,
  start: BenchStartOptions = {},
): Promise<ServerChild> {
  return startChild({
    name,
    entry: SERVER_PROCESS,
    args: [role, JSON.stringify(chain.ports), chain.dataDir, JSON.stringify(start)],
    execArgv: execArgv(name, options),
  });
}

/** A hop of the independent baseline: its port and what it forwards to (or its data directory). */
export function startBaselineHop(
  name: string,
  role: BaselineRole,
  port: number,
  upstream: string | undefined,
  options: HopOptions,
): Promise<ServerChild> {
  return startChild({
    name,
    entry: BASELINE_START,
    args: [role, String(port), ...(upstream ? [upstream] : [])],
    execArgv: execArgv(name, options),
  });
}
