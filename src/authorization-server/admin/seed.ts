/**
 * The configuration file seeds the directory, and keeps owning what it seeded until an
 * administrator takes it over. At each start, for `users.approved`, `users.domains` and
 * `clientIdMetadataDocuments.trustedDomains`:
 * - an entry of the file the directory does not have is imported (source `configuration`), unless
 *   an administrator removed it (then it stays removed);
 * - an entry still of source `configuration` follows the file: changed claims or name are taken,
 *   and one no longer in the file is removed;
 * - an entry an administrator added or changed (source `administrator`) is the directory's: the
 *   file no longer touches it.
 * docs/operations.md ("Which wins") says the same for operators.
 */

import { isDeepStrictEqual } from 'node:util';
import type { AuthorizationServerConfig } from '../../shared/config/schema.ts';
import { createApprovedUsers, normalizeDomain, normalizeEmail } from '../login/approved-users.ts';
import type { Directory } from './directory.ts';

export interface SeedResult {
  users: number;
  domains: number;
  trustedDomains: number;
  /** Entries of source `configuration` no longer in the file, removed now. */
  removed: number;
}

/** Key order aside (PostgreSQL's jsonb keeps its own), so an unchanged entry is not written again. */
const same = (a: unknown, b: unknown) => isDeepStrictEqual(a, b);

/**
 * Seeds in one unit (`exclusively`): all or nothing, and, with PostgreSQL, one instance at a time,
 * so two instances starting together on one database neither fail nor import an entry twice: the
 * second waits for the first, then finds its entries and has nothing left to do.
 */
export function seedDirectory(directory: Directory, config: AuthorizationServerConfig): Promise<SeedResult> {
  // The same validation as before the directory existed: a bad or duplicated entry stops the start.
  createApprovedUsers({ users: config.users.approved, domains: config.users.domains, subjectKey: 'check' });
  return directory.exclusively(async (directory) => {
    const result: SeedResult = { users: 0, domains: 0, trustedDomains: 0, removed: 0 };
    const fileUsers = new Set<string>();
    for (const user of config.users.approved) {
      const email = normalizeEmail(user.email)!;
      fileUsers.add(email);
      const existing = await directory.users.get(email);
      if (existing?.source === 'administrator' || (await directory.seeds.wasRemoved('user', email))) continue;
      const claims = user.claims ?? {};
      if (existing && existing.name === user.name && same(existing.claims, claims)) continue;
      await directory.users.put({
        email,
        ...(user.name !== undefined ? { name: user.name } : {}),
        claims,
        status: existing?.status ?? 'active',
        source: 'configuration',
      });
      result.users++;
    }
    for (const user of await directory.users.list()) {
      if (user.source === 'configuration' && !fileUsers.has(user.email)) {
        await directory.users.remove(user.email);
        result.removed++;
      }
    }
    const fileDomains = new Set<string>();
    for (const entry of config.users.domains) {
      const domain = normalizeDomain(entry.domain)!;
      fileDomains.add(domain);
      const existing = await directory.domains.get(domain);
      if (existing?.source === 'administrator' || (await directory.seeds.wasRemoved('domain', domain)))
        continue;
      const claims = entry.claims ?? {};
      if (existing && same(existing.claims, claims)) continue;
      await directory.domains.put({ domain, claims, source: 'configuration' });
      result.domains++;
    }
    for (const entry of await directory.domains.list()) {
      if (entry.source === 'configuration' && !fileDomains.has(entry.domain)) {
        await directory.domains.remove(entry.domain);
        result.removed++;
      }
    }
    const fileTrusted = new Set<string>();
    const known = new Set((await directory.trustedDomains.list()).map((entry) => entry.domain));
    for (const raw of config.clientIdMetadataDocuments.trustedDomains) {
      const domain = raw.trim().toLowerCase();
      fileTrusted.add(domain);
      if (known.has(domain) || (await directory.seeds.wasRemoved('trusted-domain', domain))) continue;
      await directory.trustedDomains.add(domain, 'configuration');
      known.add(domain);
      result.trustedDomains++;
    }
    for (const entry of await directory.trustedDomains.list()) {
      if (entry.source === 'configuration' && !fileTrusted.has(entry.domain)) {
        await directory.trustedDomains.remove(entry.domain);
        result.removed++;
      }
    }
    return result;
  });
}
