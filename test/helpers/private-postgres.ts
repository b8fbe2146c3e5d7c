/**
 * A PostgreSQL server of a test's own (initdb into a temporary directory, pg_ctl on a free port),
 * for fault tests that stop and restart the database: the machine's shared server cannot be
 * restarted under the other suites running beside it.
 *
 * Uses Debian's binaries (/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root,
 * so as root it runs as the `postgres` user (runuser). Without the binaries the tests are skipped,
 * saying why, except in CI, where they must run.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.ts';

const run = promisify(execFile);
const ROOT = '/usr/lib/postgresql';

function binaries(): string | undefined {
  if (!existsSync(ROOT)) return undefined;
  const versions = readdirSync(ROOT)
    .filter((name) => existsSync(path.join(ROOT, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(ROOT, versions[0], 'bin') : undefined;
}

const asRoot = () => userInfo().uid === 0;

/** `skip` for a suite that needs a private server: false when it can run, else the reason. */
export function skipWithoutPrivatePostgres(): false | string {
  if (binaries() && (!asRoot() || existsSync('/usr/sbin/runuser'))) return false;
  if (process.env.CI === 'true') return false;
  return `no PostgreSQL server binaries under ${ROOT} (apt-get install postgresql) for a private test server`;
}

export interface PrivatePostgres {
  /** postgres:// URL of the database `gatehouse` on it. */
  url: string;
  port: number;
  /** Stops the server at once, as a crash would (pg_ctl -m immediate). */
  crash(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binaries();
  if (!bin) throw new Error(`no PostgreSQL binaries under ${ROOT}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-private-pg-'));
  if (asRoot()) chownSync(dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), 0);
  const data = path.join(dir, 'data');
  const pgTool = (tool: string, args: string[]) =>
    asRoot()
      ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args])
      : run(path.join(bin, tool), args);
  await pgTool('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  // fsync off: the test is about the connections, and the operating system does not crash here.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const start = async () => {
    await pgTool('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-o', options, '-w', 'start']);
  };
  await start();
  const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  await admin.connect();
  await admin.query('CREATE DATABASE gatehouse');
  await admin.end();
  const stop = (mode: 'immediate' | 'fast') => pgTool('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/gatehouse`,
    port,
    crash: async () => {
      await stop('immediate');
    },
    start,
    close: async () => {
      await stop('immediate').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
