/**
 * A generated secret that lives in the data directory as files (secrets/*.secret, a key pair) and,
 * with PostgreSQL, in the shared database (generated-secrets.ts), which decides:
 *
 * - the database has it: it is used; a local file that differs means this data directory belongs to
 *   another deployment than the database, and the start stops rather than picking one (clients of
 *   the other would be refused, or let in);
 * - the database does not: the local files' value (an installation moving to PostgreSQL), or a new
 *   one, is inserted unless another instance got there first, and what is kept is used.
 *
 * `mirror` writes what the database holds into missing local files, for readers of those files on
 * this host (the gateway and MCP server read `file:` secrets from the same data directory; the
 * agent reads the workload's private key). The subject key has no such reader and stays out of it.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../shared/config/load.ts';
import type { GeneratedSecrets } from './generated-secrets.ts';

export interface GeneratedFile {
  /** As the configuration names it: relative to the data directory, or absolute. */
  path: string;
  mode: number;
}

export interface SharedGeneratedFiles {
  /** The row's name. */
  name: string;
  files: readonly GeneratedFile[];
  /** A new value: each file's contents, in the order of `files`. */
  generate: () => Promise<string[]>;
  mirror: boolean;
  /** Runs before a new value is made (none in the database, no local files): may refuse. */
  beforeGenerate?: () => Promise<void>;
}

function contentsOf(value: string, name: string, count: number): string[] {
  const parsed = JSON.parse(value) as unknown;
  if (!Array.isArray(parsed) || parsed.length !== count || !parsed.every((item) => typeof item === 'string'))
    throw new ConfigError(
      `the generated secret ${name} kept in PostgreSQL is not what this Gatehouse expects`,
    );
  return parsed as string[];
}

/** The files' contents as the database keeps them, local files checked against them (or imported). */
export async function shareGeneratedFiles(
  secrets: GeneratedSecrets,
  dataDir: string,
  shared: SharedGeneratedFiles,
): Promise<string[]> {
  const files = shared.files.map((file) => ({ ...file, absolute: path.resolve(dataDir, file.path) }));
  const local = files.map((file) =>
    existsSync(file.absolute) ? readFileSync(file.absolute, 'utf8').trim() : undefined,
  );
  const complete = local.every((contents) => contents !== undefined);
  let kept = await secrets.get(shared.name);
  if (kept === undefined) {
    let value: string[];
    if (complete) value = local as string[];
    else {
      await shared.beforeGenerate?.();
      value = (await shared.generate()).map((contents) => contents.trim());
    }
    kept = await secrets.insertIfAbsent(shared.name, JSON.stringify(value));
  }
  const contents = contentsOf(kept, shared.name, files.length);
  files.forEach((file, index) => {
    const mine = local[index];
    if (mine !== undefined && mine !== contents[index])
      throw new ConfigError(
        `${file.absolute} differs from the ${shared.name} kept in PostgreSQL: this data directory and the ` +
          'database belong to different deployments. Point storage.url at the database this directory was ' +
          `used with, or move ${file.absolute} away to take the database's value`,
      );
    if (mine === undefined && shared.mirror) {
      mkdirSync(path.dirname(file.absolute), { recursive: true, mode: 0o700 });
      try {
        writeFileSync(file.absolute, `${contents[index]}\n`, { mode: file.mode, flag: 'wx' });
      } catch (error) {
        // Another instance on this same data directory wrote it meanwhile: fine if it wrote the same.
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (readFileSync(file.absolute, 'utf8').trim() !== contents[index])
          throw new ConfigError(
            `${file.absolute} was written meanwhile and differs from the ${shared.name} kept in PostgreSQL`,
          );
        return;
      }
      chmodSync(file.absolute, file.mode);
    }
  });
  return contents;
}
