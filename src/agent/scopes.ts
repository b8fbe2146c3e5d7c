/**
 * Which scope the agent asks for, per the MCP authorization spec ("Scope Selection Strategy"):
 * the challenge's `scope` first, else the resource's `scopes_supported`; on step-up, the union of
 * what it holds and what the challenge asks (SEP-2350), so a new permission never costs an old one.
 */
import { computeScopeUnion } from '@modelcontextprotocol/client';

/** The scope tokens of a space-separated scope string (RFC 6749 §3.3). */
export const scopeList = (scope: string | undefined): string[] => (scope ?? '').split(/\s+/).filter(Boolean);

/** The first authorization's scope: an explicit choice, else the challenge's, else what the resource supports. */
export function initialScope(options: {
  requested?: string | undefined;
  challenged?: string | undefined;
  scopesSupported?: string[] | undefined;
}): string | undefined {
  if (scopeList(options.requested).length > 0) return scopeList(options.requested).join(' ');
  if (scopeList(options.challenged).length > 0) return scopeList(options.challenged).join(' ');
  const supported = options.scopesSupported ?? [];
  return supported.length > 0 ? supported.join(' ') : undefined;
}

/** Step-up: the union of every scope held (or asked for before) and the scope the challenge names. */
export const stepUpScope = (...scopes: Array<string | undefined>): string | undefined =>
  computeScopeUnion(...scopes);

/** True when every scope in `needed` is in `granted`. */
export function covers(granted: string | undefined, needed: string | undefined): boolean {
  const have = new Set(scopeList(granted));
  return scopeList(needed).every((scope) => have.has(scope));
}
