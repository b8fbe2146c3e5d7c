/**
 * The installation's subject key (`<dataDir>/secrets/subject.key`): every user's subject is derived
 * with it (approved-users.ts `subjectFor`), so it must never change.
 *
 * Made at first start. When it is missing but the database holds accounts, it was either never
 * there (an installation from before the key: its subjects are the unkeyed hashes, and a new key is
 * made and the subjects move to it, subject-migration.ts) or it was lost (the subjects were keyed
 * with it). A lost key is not replaced silently: every user would get a new subject, and every
 * client would see strangers. The server refuses to start and says what to do, unless
 * `GATEHOUSE_NEW_SUBJECT_KEY=1` says to make a new key anyway.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { ConfigError } from '../../shared/config/load.ts';
import { resolveSecret } from '../../shared/config/secrets.ts';
import { legacySubjectFor, staleSubjects } from './subject-migration.ts';

/** The key's file, relative to the data directory. */
export const SUBJECT_KEY_FILE = 'secrets/subject.key';

export function loadSubjectKey(dataDir: string, db: DatabaseSync): string {
  const file = path.resolve(dataDir, SUBJECT_KEY_FILE);
  if (!existsSync(file)) {
    const { accounts, stale } = staleSubjects(db, legacySubjectFor);
    const keyedWithALostKey = stale.length > 0;
    if (accounts.length > 0 && keyedWithALostKey && process.env.GATEHOUSE_NEW_SUBJECT_KEY !== '1') {
      throw new ConfigError(
        `${file} is missing, but the database holds ${accounts.length} accounts whose subjects were derived with it. ` +
          'Restore the file from the backup you made with the database. To give every user a new subject instead ' +
          '(their grants and tokens are kept; clients that stored a subject will see a new user), start once with ' +
          'GATEHOUSE_NEW_SUBJECT_KEY=1.',
      );
    }
  }
  return resolveSecret(`file:${SUBJECT_KEY_FILE}`, dataDir, { generate: true });
}
