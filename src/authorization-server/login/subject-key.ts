/**
 * The installation's subject key (`<dataDir>/secrets/subject.key`, or with PostgreSQL a sealed row
 * of the shared database): every user's subject is derived with it (approved-users.ts
 * `subjectFor`), so it must never change, and every instance must use the same one.
 *
 * Made at first start. When it is missing but the store holds accounts, it was either never
 * there (an installation from before the key: its subjects are the unkeyed hashes, and a new key is
 * made and the subjects move to it, subject-migration.ts; SQLite only) or it was lost (the subjects
 * were keyed with it). A lost key is not replaced silently: every user would get a new subject, and
 * every client would see strangers. The server refuses to start and says what to do, unless
 * `GATEHOUSE_NEW_SUBJECT_KEY=1` says to make a new key anyway.
 *
 * With PostgreSQL the database's key is the one (store/shared-generated-files.ts): a local
 * secrets/subject.key is imported by the first instance, must equal it afterwards, and is never
 * written from the database (nothing else on the host reads it).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { ConfigError } from '../../shared/config/load.ts';
import { resolveSecret } from '../../shared/config/secrets.ts';
import type { GeneratedSecrets } from '../store/generated-secrets.ts';
import { shareGeneratedFiles } from '../store/shared-generated-files.ts';
import type { Accounts } from './accounts.ts';
import { legacySubjectFor, staleSubjects } from './subject-migration.ts';

/** The key's file, relative to the data directory (and its row's name in PostgreSQL). */
export const SUBJECT_KEY_FILE = 'secrets/subject.key';

export interface SubjectKeyStore {
  /** The SQLite database of the data directory (where legacy subjects can be). */
  sqlite: DatabaseSync;
  accounts: Accounts;
  /** The shared database's generated secrets, with PostgreSQL. */
  shared?: GeneratedSecrets | undefined;
}

const lostKey = (where: string, accounts: number, restore: string) =>
  new ConfigError(
    `${where} is missing, but the store holds ${accounts} accounts whose subjects were derived with it. ` +
      `${restore} from the backup you made with the database. To give every user a new subject instead ` +
      '(their grants and tokens are kept; clients that stored a subject will see a new user), start once with ' +
      'GATEHOUSE_NEW_SUBJECT_KEY=1.',
  );
const newKeyWanted = () => process.env.GATEHOUSE_NEW_SUBJECT_KEY === '1';

export async function loadSubjectKey(dataDir: string, store: SubjectKeyStore): Promise<string> {
  const file = path.resolve(dataDir, SUBJECT_KEY_FILE);
  if (store.shared) {
    const [key] = await shareGeneratedFiles(store.shared, dataDir, {
      name: SUBJECT_KEY_FILE,
      files: [{ path: SUBJECT_KEY_FILE, mode: 0o600 }],
      generate: async () => [randomBytes(32).toString('base64url')],
      mirror: false,
      // Every subject PostgreSQL ever stored was keyed (it came after the key): accounts mean a lost key.
      async beforeGenerate() {
        const accounts = (await store.accounts.subjects()).length;
        if (accounts > 0 && !newKeyWanted())
          throw lostKey(
            `The subject key (${SUBJECT_KEY_FILE} in PostgreSQL's generated_secrets, or ${file})`,
            accounts,
            'Restore the database, or put the file back (it is imported),',
          );
      },
    });
    return key!;
  }
  if (!existsSync(file)) {
    const { accounts, stale } = staleSubjects(store.sqlite, legacySubjectFor);
    const keyedWithALostKey = stale.length > 0;
    if (accounts.length > 0 && keyedWithALostKey && !newKeyWanted())
      throw lostKey(file, accounts.length, 'Restore the file');
  }
  return resolveSecret(`file:${SUBJECT_KEY_FILE}`, dataDir, { generate: true });
}
