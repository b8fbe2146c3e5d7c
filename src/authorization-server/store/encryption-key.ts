/**
 * `storage.encryptionKey`: the key that seals the signing keys and generated secrets the PostgreSQL
 * store keeps (sealed-box.ts). Required with PostgreSQL and never generated: a key made by one
 * instance would have to reach the others somehow, and a key kept in the database would protect
 * nothing. Read through the secret references (`env:NAME`, `file:PATH`), like every other secret.
 */
import { ConfigError, type LoadedConfig } from '../../shared/config/load.ts';
import { resolveSecret } from '../../shared/config/secrets.ts';

export const ENCRYPTION_KEY_SETTING = 'storage.encryptionKey';

const HOW_TO_MAKE_ONE =
  'make one with `openssl rand -base64 32`, keep it outside the database (a secret manager, a 0600 ' +
  'file), give every instance the same one as env:NAME or file:/path, and back it up: without it ' +
  'the keys and secrets in the database cannot be read';

/** The 32 bytes the value holds, as 64 hex digits or base64 (standard or URL-safe alphabet). */
export function decodeEncryptionKey(value: string): Buffer {
  const text = value.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) key = Buffer.from(text, 'base64');
  if (key?.length !== 32)
    throw new ConfigError(
      `${ENCRYPTION_KEY_SETTING} must hold 32 bytes as base64 or hex: ${HOW_TO_MAKE_ONE}`,
    );
  // A placeholder (all zeros, one byte repeated) is not a key: random bytes never look like that.
  if (new Set(key).size < 8)
    throw new ConfigError(`${ENCRYPTION_KEY_SETTING} is not random (a placeholder?): ${HOW_TO_MAKE_ONE}`);
  return key;
}

/** The key the configuration names; the start stops, saying how to make one, when it is missing. */
export function storageEncryptionKey(loaded: LoadedConfig): Buffer {
  const reference = loaded.config.storage.encryptionKey;
  if (!reference)
    throw new ConfigError(
      `${ENCRYPTION_KEY_SETTING} is required with PostgreSQL: the signing keys and secrets kept there are encrypted with it; ${HOW_TO_MAKE_ONE}`,
    );
  return decodeEncryptionKey(resolveSecret(reference, loaded.dataDir));
}
