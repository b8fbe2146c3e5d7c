/**
 * Who may sign in, read from the directory (directory.ts) instead of the configuration file, so an
 * administrator's change applies to the next request without a restart.
 *
 * Same rules as the configuration list (login/approved-users.ts): an explicit entry wins over its
 * domain's entry as a whole, domains match exactly. A suspended user is not approved: they cannot
 * sign in, and tokens already issued to them stop at once (introspection and token exchange ask
 * this on every use, of the store itself). Administrators (configuration only, never the directory, so no admin change
 * can make someone an administrator) may always sign in, if only to reach the console.
 */
import {
  type ApprovedUser,
  type ApprovedUserLookup,
  normalizeEmail,
  subjectFor,
} from '../login/approved-users.ts';
import type { Directory } from './directory.ts';

export interface DirectoryUsers extends ApprovedUserLookup {
  isAdministrator(email: string): boolean;
}

export function directoryApprovedUsers(
  directory: Directory,
  options: { subjectKey: string; administrators: readonly string[] },
): DirectoryUsers {
  const administrators = new Set(
    options.administrators.map((email) => normalizeEmail(email)).filter((email) => email !== undefined),
  );
  return {
    isAdministrator: (input) => {
      const email = normalizeEmail(input);
      return email !== undefined && administrators.has(email);
    },
    async find(input) {
      const email = normalizeEmail(input);
      if (!email) return undefined;
      const entry = await directory.users.get(email);
      const sub = subjectFor(email, options.subjectKey);
      if (entry) {
        if (entry.status !== 'active') return undefined;
        const user: ApprovedUser = { sub, email, claims: structuredClone(entry.claims) };
        if (entry.name !== undefined) user.name = entry.name;
        return user;
      }
      const domain = await directory.domains.get(email.slice(email.lastIndexOf('@') + 1));
      if (domain) return { sub, email, claims: structuredClone(domain.claims) };
      if (administrators.has(email)) return { sub, email, claims: {} };
      return undefined;
    },
  };
}
