/**
 * Classification of IP addresses for SSRF protection.
 *
 * draft-ietf-oauth-client-id-metadata-document-02, Section 8.6: an authorization server MUST NOT fetch a
 * Client ID Metadata Document from a URL that resolves to a special-use IP address as defined in RFC 6890
 * (and the IANA special-purpose address registries that RFC 6890 established). We implement that as an
 * allowlist, not a blocklist: an address is "public" only if it is plain global unicast. Anything ipaddr.js
 * puts in a named range (private, loopback, link-local, CGNAT, documentation, 6to4, Teredo, NAT64, ...),
 * and any string that is not a canonical IP address, is refused. A range we forgot to list therefore fails
 * closed rather than open.
 */

import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Parses a textual IP address the way the operating system will use it, or returns undefined.
 *
 * `net.isIP` is the gate because it only accepts the canonical dotted-quad and RFC 4291 forms. ipaddr.js on its
 * own also accepts legacy shorthands such as "127.1" or "0x7f.1" (inet_aton style); those never reach us from
 * the resolver, but refusing them here keeps this function safe to call on arbitrary input.
 * IPv6 zone identifiers ("fe80::1%eth0") are refused: they only make sense for link-local addresses, which
 * are never public.
 */
function parseAddress(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (typeof ip !== 'string' || isIP(ip) === 0 || ip.includes('%')) return undefined;
  try {
    const parsed = ipaddr.parse(ip);
    // RFC 4291, Section 2.5.5.2: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) reaches the IPv4 host a.b.c.d,
    // so it must be judged as that IPv4 address (otherwise ::ffff:127.0.0.1 would slip through as "unicast"
    // or be refused for the wrong reason).
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (parsed as ipaddr.IPv6).toIPv4Address();
    }
    return parsed;
  } catch {
    return undefined;
  }
}

/**
 * RFC 4291, Section 2.4 and the IANA IPv6 Address Space registry: global unicast is 2000::/3. Addresses outside
 * it (notably the deprecated IPv4-compatible ::a.b.c.d form in ::/96, which ipaddr.js reports as "unicast")
 * are not routable on the public Internet and are refused.
 */
const IPV6_GLOBAL_UNICAST = ipaddr.parseCIDR('2000::/3') as [ipaddr.IPv6, number];

/**
 * True only for a canonical IPv4 or IPv6 address that is plain global unicast, i.e. outside every special-use
 * range of RFC 6890 and its successors. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 */
export function isPublicAddress(ip: string): boolean {
  const address = parseAddress(ip);
  if (address === undefined) return false;
  if (address.kind() === 'ipv4') return (address as ipaddr.IPv4).range() === 'unicast';
  const v6 = address as ipaddr.IPv6;
  return v6.range() === 'unicast' && v6.match(IPV6_GLOBAL_UNICAST);
}

/**
 * True for 127.0.0.0/8 (RFC 1122, Section 3.2.1.3), ::1 (RFC 4291, Section 2.5.3) and IPv4-mapped forms of
 * 127.0.0.0/8. Used only for the development switch that lets a local client serve its metadata document.
 */
export function isLoopbackAddress(ip: string): boolean {
  const address = parseAddress(ip);
  return address !== undefined && address.range() === 'loopback';
}
