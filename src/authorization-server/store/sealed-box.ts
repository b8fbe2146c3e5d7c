/**
 * Encryption at rest for what the PostgreSQL store must keep secret from whoever reads the
 * database (a backup, a replica, a DBA): the signing keys and the generated secrets. AES-256-GCM
 * (NIST SP 800-38D) with `storage.encryptionKey`, which is never stored in the database.
 *
 * A sealed value is `format (1 byte) | key id (8) | IV (12) | ciphertext | tag (16)`. The IV is
 * random for every seal: GCM must never see an IV twice under one key, and 96 random bits are safe
 * for far more writes than keys and secrets ever see. The additional data binds the format, the key
 * id and the row's name, so a sealed value moved to another row (a secret swapped for another, a
 * key set copied over a secret) fails to open rather than being taken for the other. The key id
 * (the first 8 bytes of SHA-256 of the key) only lets a wrong key be told apart from damage.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const FORMAT = 1;
const KEY_ID_BYTES = 8;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES + IV_BYTES;

/** A sealed value that cannot be opened: another key, another row's value, or damage. */
export class SealedBoxError extends Error {
  override name = 'SealedBoxError';
}

export interface SealedBox {
  /** For messages and logs: identifies the key without revealing anything about it. */
  readonly keyId: string;
  /** Encrypts `plaintext` for the row `name`. */
  seal(name: string, plaintext: string): Buffer;
  /** Decrypts what seal() made for the same `name` with the same key; throws SealedBoxError otherwise. */
  open(name: string, sealed: Buffer): string;
}

function additionalData(keyId: Buffer, name: string): Buffer {
  return Buffer.concat([Buffer.from([FORMAT]), keyId, Buffer.from(name, 'utf8')]);
}

/** A box for one 32-byte key (store/encryption-key.ts reads it from the configuration). */
export function sealedBox(key: Buffer): SealedBox {
  if (key.length !== 32) throw new Error('an AES-256-GCM key has 32 bytes');
  const secret = Buffer.from(key);
  const keyId = createHash('sha256').update(secret).digest().subarray(0, KEY_ID_BYTES);
  const keyIdHex = keyId.toString('hex');
  return {
    keyId: keyIdHex,
    seal(name, plaintext) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(additionalData(keyId, name));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([FORMAT]), keyId, iv, body, cipher.getAuthTag()]);
    },
    open(name, sealed) {
      if (sealed.length < HEADER_BYTES + TAG_BYTES || sealed[0] !== FORMAT)
        throw new SealedBoxError(`${name}: not a sealed value of a format this Gatehouse reads`);
      const sealedWith = sealed.subarray(1, 1 + KEY_ID_BYTES);
      if (!sealedWith.equals(keyId))
        throw new SealedBoxError(
          `${name} was sealed with another storage.encryptionKey (key id ${sealedWith.toString('hex')}, ` +
            `this one is ${keyIdHex}): give the key every other instance uses`,
        );
      const iv = sealed.subarray(1 + KEY_ID_BYTES, HEADER_BYTES);
      const body = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(additionalData(keyId, name));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        throw new SealedBoxError(`${name} does not open: it was altered, or it belongs to another row`);
      }
    },
  };
}
