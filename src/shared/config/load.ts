/**
 * Reads the configuration file once, at start, into a typed, validated object.
 *
 * Errors name the bad key (`authorizationServer.issuer: must be ...`) and the file, and say what to
 * do next; nothing starts on a configuration that does not validate (fail closed).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, type GatehouseConfig } from './schema.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadedConfig {
  config: GatehouseConfig;
  /** Absolute data directory (relative values resolve against the config file's folder). */
  dataDir: string;
  /** The file the configuration came from, or undefined for the built-in defaults. */
  file: string | undefined;
}

/** Formats zod issues as `path.to.key: message` lines. */
export function describeIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((k) => (key === '(top level)' ? k : `${key}.${k}`));
        return `  ${keys.join(', ')}: unknown setting (check the spelling against docs/configuration.md)`;
      }
      return `  ${key}: ${issue.message}`;
    })
    .join('\n');
}

/** Validates an already-parsed configuration object. */
export function parseConfig(input: unknown, source = 'configuration'): GatehouseConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(`${source} is not valid:\n${describeIssues(result.error.issues)}`);
  }
  return result.data;
}

/** Loads `file` (YAML or JSON; YAML is a superset) or, without one, the built-in defaults. */
export function loadConfig(file?: string, cwd = process.cwd()): LoadedConfig {
  if (!file) {
    const config = parseConfig({}, 'built-in configuration');
    return { config, dataDir: path.resolve(cwd, config.dataDir), file: undefined };
  }
  const absolute = path.resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT'
        ? `configuration file ${absolute} does not exist: pass an existing file with --config, or none for the defaults`
        : `configuration file ${absolute} cannot be read (${code})`,
    );
  }
  let input: unknown;
  try {
    input = YAML.parse(text, { prettyErrors: true });
  } catch (error) {
    throw new ConfigError(
      `configuration file ${absolute} is not valid YAML/JSON: ${(error as Error).message}`,
    );
  }
  const config = parseConfig(input, `configuration file ${absolute}`);
  return { config, dataDir: path.resolve(path.dirname(absolute), config.dataDir), file: absolute };
}
