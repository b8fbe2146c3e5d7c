/**
 * The list of people allowed to sign in: explicit addresses, and whole domains.
 *
 * Only someone this module finds may receive a sign-in code; everyone else gets the decoy path of
 * one-time-codes.ts, so the login page behaves the same whether or not an address is approved.
 */

import { createHmac } from 'node:crypto';
import { PERMITTED_TOOLS_CLAIM, TOOL_CLAIM } from '../../shared/tool-claims.ts';

export type ClaimValue = string | number | boolean | string[];

export interface ApprovedUsersConfig {
  users: Array<{ email: string; name?: string; claims?: Record<string, ClaimValue> }>;
  domains: Array<{ domain: string; claims?: Record<string, ClaimValue> }>;
  /** The installation's secret subjects are derived with (subjectFor). */
  subjectKey: string;
}

export interface ApprovedUser {
  /** Stable, opaque subject identifier; see subjectFor. */
  sub: string;
  /** The normalized (trimmed, lowercase) address. */
  email: string;
  name?: string;
  /** Extra claims from the configuration; a fresh copy on every call, so callers may modify it. */
  claims: Record<string, unknown>;
}

export interface ApprovedUsers {
  /** The approved user for this address, or undefined when it is unknown or not an address at all. */
  find(email: string): ApprovedUser | undefined;
}

/** The same question asked of a store (admin/directory-users.ts): the answer may take a query. */
export interface ApprovedUserLookup {
  find(email: string): Promise<ApprovedUser | undefined>;
}

/**
 * Claims the authorization server sets itself. Letting the configuration set them would let one entry
 * take over another user's subject, or claim an address that was never verified, so they are refused.
 */
// The tool claims (shared/tool-claims.ts) too: a user given `mcp_tools` would choose their own tools.
const RESERVED_CLAIMS = new Set(['sub', 'email', 'email_verified', PERMITTED_TOOLS_CLAIM, TOOL_CLAIM]);

// Deliberately stricter than RFC 5321: plain ASCII "dot-atom" local parts and LDH domain labels. Quoted
// local parts, IP literals and raw Unicode are refused, because every extra form is another way for two
// different-looking strings to reach the same mailbox (or for one to confuse the mail server). Configure
// internationalized domains in their punycode (xn--) form.
const LOCAL_PART = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Trims and lowercases an address; undefined when what is left is not a plausible address. */
export function normalizeEmail(email: string): string | undefined {
  const normalized = email.trim().toLowerCase();
  // 254 is the longest address that fits in an SMTP path (RFC 5321 §4.5.3.1.3 and errata).
  if (normalized.length > 254) return undefined;
  const at = normalized.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = normalized.slice(0, at);
  const domain = normalized.slice(at + 1);
  if (local.length > 64 || !LOCAL_PART.test(local)) return undefined;
  return isValidDomain(domain) ? normalized : undefined;
}

function isValidDomain(domain: string): boolean {
  if (domain.length === 0 || domain.length > 253) return false;
  return domain.split('.').every((label) => DOMAIN_LABEL.test(label));
}

/**
 * The subject identifier of an address: "user_" and the first 22 base64url characters (132 bits) of
 * HMAC-SHA-256 of the normalized address, keyed with the installation's subject key
 * (`<dataDir>/secrets/subject.key`, made at first start; subject-migration.ts).
 *
 * Why derived rather than stored: the approved list lives in configuration, with no database row to
 * hold a random id, and the subject must stay the same across restarts, config reloads and reordering
 * of entries, or clients would see the same person as a new user. Why keyed: the subject travels in
 * every token and in client databases, and must not hand out the address to a client that was never
 * granted the email scope; an unkeyed hash would let anyone who suspects an address compute its
 * subject and confirm the guess offline. Changing a user's address changes their subject; that is
 * accepted, as the address is the identity. The key must never change (it would change every subject).
 */
export function subjectFor(normalizedEmail: string, subjectKey: string | Buffer): string {
  const mac = createHmac('sha256', subjectKey).update(normalizedEmail, 'utf8').digest('base64url');
  return `user_${mac.slice(0, 22)}`;
}

interface Entry {
  name?: string;
  claims: Record<string, ClaimValue>;
}

/** The first claim name Gatehouse sets itself (and so refuses from configuration or an administrator). */
export function reservedClaimIn(claims: Record<string, unknown> | undefined): string | undefined {
  return Object.keys(claims ?? {}).find((key) => RESERVED_CLAIMS.has(key));
}

function checkedClaims(
  claims: Record<string, ClaimValue> | undefined,
  where: string,
): Record<string, ClaimValue> {
  const reserved = reservedClaimIn(claims);
  if (reserved) throw new Error(`${where}: the claim "${reserved}" is set by Gatehouse itself`);
  return structuredClone(claims ?? {});
}

/** "@Example.com" → "example.com"; undefined when it is not a domain name. */
export function normalizeDomain(input: string): string | undefined {
  // "@example.com" is accepted as a spelling of "example.com", a common way to write it.
  const domain = input.trim().toLowerCase().replace(/^@/, '');
  return isValidDomain(domain) ? domain : undefined;
}

/**
 * Builds the lookup. A malformed or duplicated entry throws here, at startup, rather than silently
 * approving nobody (or the wrong person) later.
 */
export function createApprovedUsers(config: ApprovedUsersConfig): ApprovedUsers {
  const users = new Map<string, Entry>();
  const domains = new Map<string, Entry>();

  for (const user of config.users) {
    const email = normalizeEmail(user.email);
    if (!email) throw new Error(`approved users: "${user.email}" is not a valid email address`);
    if (users.has(email)) throw new Error(`approved users: "${email}" is listed twice`);
    const entry: Entry = { claims: checkedClaims(user.claims, `approved user ${email}`) };
    if (user.name !== undefined) entry.name = user.name;
    users.set(email, entry);
  }

  for (const item of config.domains) {
    const domain = normalizeDomain(item.domain);
    if (!domain) throw new Error(`approved domains: "${item.domain}" is not a valid domain`);
    if (domains.has(domain)) throw new Error(`approved domains: "${domain}" is listed twice`);
    domains.set(domain, { claims: checkedClaims(item.claims, `approved domain ${domain}`) });
  }

  return {
    find(input) {
      const email = normalizeEmail(input);
      if (!email) return undefined;
      // Exact domain match only: approving example.com must not approve mail.example.com, which may be
      // run by someone else. An explicit entry wins over its domain entry as a whole (claims are not
      // merged), so what a listed user gets can be read from their own entry alone.
      const entry = users.get(email) ?? domains.get(email.slice(email.lastIndexOf('@') + 1));
      if (!entry) return undefined;
      const user: ApprovedUser = {
        sub: subjectFor(email, config.subjectKey),
        email,
        claims: structuredClone(entry.claims),
      };
      if (entry.name !== undefined) user.name = entry.name;
      return user;
    },
  };
}
