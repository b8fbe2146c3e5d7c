/**
 * Secret references in configuration: `env:NAME`, `file:PATH` (relative to the data directory) or a
 * literal. A referenced file that does not exist yet is created with a random value when asked,
 * readable by its owner only, so the one-machine default needs no manual set-up and ships no
 * well-known secret.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './load.ts';

export function resolveSecret(
  reference: string,
  dataDir: string,
  options: { generate?: boolean } = {},
): string {
  if (reference.startsWith('env:')) {
    const name = reference.slice(4);
    const value = process.env[name];
    if (!value)
      throw new ConfigError(`environment variable ${name} is not set (referenced as "${reference}")`);
    return value;
  }
  if (reference.startsWith('file:')) {
    const file = path.resolve(dataDir, reference.slice(5));
    if (!existsSync(file)) {
      if (!options.generate) {
        throw new ConfigError(
          `secret file ${file} does not exist: start the authorization server first, or create it`,
        );
      }
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
    }
    const value = readFileSync(file, 'utf8').trim();
    if (value.length < 32) throw new ConfigError(`secret file ${file} holds fewer than 32 characters`);
    return value;
  }
  return reference;
}
