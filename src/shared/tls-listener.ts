/**
 * The built-in TLS listener's certificate: read from `listen.tls.cert` and `listen.tls.key` (PEM
 * files, relative to the configuration file's folder), checked at start, and reloaded when either
 * file changes, so a renewed certificate (certbot, an ACME client, a secret mount) takes effect
 * for new connections without a restart. A pair that does not load keeps the one in use and logs
 * why: a half-written renewal never takes the listener down.
 *
 * The MCP authorization spec (2026-07-28, "Communication Security") and OAuth 2.1 §1.5 require
 * TLS for every authorization-server endpoint outside loopback development.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { ConfigError } from './config/load.ts';
import type { Logger } from './logging.ts';

/** Absolute paths of the certificate chain and its private key. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** The setting that names them, for messages (e.g. `gateway.listen.tls`). */
  setting: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Of the leaf certificate: for the log line that says which one is served. */
  subject: string;
  validTo: string;
  fingerprint256: string;
}

/** `listen.tls` of a component's configuration, with its paths made absolute. */
export function tlsFiles(
  tls: { cert: string; key: string } | undefined,
  configFile: string | undefined,
  setting: string,
): TlsFiles | undefined {
  if (!tls) return undefined;
  const base = configFile ? path.dirname(configFile) : process.cwd();
  return { cert: path.resolve(base, tls.cert), key: path.resolve(base, tls.key), setting };
}

/** Reads and checks the pair; throws ConfigError saying which file is wrong and how. */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        `${files.setting}.${what}: ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  };
  const cert = read(files.cert, 'cert');
  const key = read(files.key, 'key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`${files.setting}.cert: ${files.cert} is not a PEM certificate`);
  }
  try {
    // Throws when the key is not a key, or not the certificate's (OpenSSL's key_values_mismatch).
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(
      `${files.setting}.key: ${files.key} is not the private key of ${files.cert} (${(error as Error).message})`,
    );
  }
  return { cert, key, subject: leaf.subject, validTo: leaf.validTo, fingerprint256: leaf.fingerprint256 };
}

/** Polls both files (every `intervalMs`) and swaps the server's certificate when they change. */
export function reloadOnChange(
  server: HttpsServer,
  files: TlsFiles,
  initial: TlsMaterial,
  logger: Logger,
  intervalMs = 2000,
): () => void {
  let served = initial.fingerprint256;
  const reload = () => {
    let material: TlsMaterial;
    try {
      material = loadTlsMaterial(files);
    } catch (error) {
      logger.error('TLS certificate not reloaded: the one in use stays', { error: (error as Error).message });
      return;
    }
    if (material.fingerprint256 === served) return;
    server.setSecureContext({ cert: material.cert, key: material.key });
    served = material.fingerprint256;
    logger.info('TLS certificate reloaded', {
      subject: material.subject,
      valid_to: material.validTo,
      fingerprint256: material.fingerprint256,
    });
  };
  const onChange = () => reload();
  // watchFile polls by path, so a file replaced by a rename (how renewals are written) is seen too.
  watchFile(files.cert, { interval: intervalMs, persistent: false }, onChange);
  watchFile(files.key, { interval: intervalMs, persistent: false }, onChange);
  return () => {
    unwatchFile(files.cert, onChange);
    unwatchFile(files.key, onChange);
  };
}
