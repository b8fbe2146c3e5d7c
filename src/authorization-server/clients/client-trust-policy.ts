/**
 * Domain-based trust for Client Identifier URLs.
 *
 * draft-ietf-oauth-client-id-metadata-document-02, Section 8.9 ("Client ID Domain Trust"): the authorization
 * server may keep its own policy about the domains used as client IDs, e.g. an allowlist of trusted operators
 * whose clients get less friction, and extra warnings (or refusal) for the rest. This module only classifies;
 * what each level means (skip a warning, show one, refuse) is decided by the caller.
 */

import { domainToASCII } from 'node:url';

export type TrustLevel = 'trusted' | 'unverified' | 'denied';

export interface ClientTrustPolicy {
  /** Domains whose clients are trusted. `example.com` covers `example.com` and every subdomain of it. */
  trustedDomains: string[];
  /** Domains whose clients are refused. Denied wins over trusted. */
  deniedDomains: string[];
  /** What a host in neither list gets: 'allow' → 'unverified', 'deny' → 'denied'. */
  unlisted: 'allow' | 'deny';
}

/**
 * Brings a configured domain to the form WHATWG URL gives `url.hostname`: lowercase, IDNA A-labels (punycode),
 * no trailing dot, IPv6 without brackets. A leading `*.` or `.` is dropped, so `example.com`, `.example.com`
 * and `*.example.com` are equivalent (the domain and all its subdomains). Returns undefined for an entry that
 * cannot be a host name; such an entry matches nothing (fail closed for trusted, and it is a config error for
 * denied that configuration validation should catch).
 */
function normalizeDomain(entry: string): string | undefined {
  let domain = entry.trim().toLowerCase();
  if (domain.startsWith('*.')) domain = domain.slice(2);
  else if (domain.startsWith('.')) domain = domain.slice(1);
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  if (domain.startsWith('[') && domain.endsWith(']')) return domain.slice(1, -1) || undefined;
  if (domain === '' || domain.includes('*')) return undefined;
  const ascii = domainToASCII(domain);
  return ascii === '' ? undefined : ascii;
}

function hostOf(clientId: string): string | undefined {
  const url = URL.parse(clientId);
  if (url === null || url.hostname === '') return undefined;
  let host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  // A fully qualified "example.com." names the same host as "example.com"; without this a trailing dot
  // would escape a deny entry.
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host;
}

/**
 * Label-wise suffix match: the host equals the domain or ends with "." + domain. Plain `endsWith(domain)` would
 * let `badexample.com` match `example.com`.
 */
function matchesAny(host: string, domains: readonly string[]): boolean {
  for (const entry of domains) {
    const domain = normalizeDomain(entry);
    if (domain === undefined) continue;
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/**
 * Classifies a Client Identifier URL by its host (the port and path play no part). A client_id that does not
 * parse as a URL with a host is 'denied'.
 */
export function classifyClientIdUrl(clientId: string, policy: ClientTrustPolicy): TrustLevel {
  const host = hostOf(clientId);
  if (host === undefined) return 'denied';
  if (matchesAny(host, policy.deniedDomains)) return 'denied';
  if (matchesAny(host, policy.trustedDomains)) return 'trusted';
  return policy.unlisted === 'allow' ? 'unverified' : 'denied';
}
