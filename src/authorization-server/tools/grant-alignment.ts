/**
 * A remembered consent (an oidc-provider Grant) brought in line with the tool policy as it is now,
 * each time it is loaded for an authorization request:
 *
 * - a scope the user holds but may no longer have (an administrator changed a rule or the user's
 *   claims) is rejected, so no new token carries it;
 * - a scope refused earlier because it was forbidden then, and allowed now, is forgotten, so the
 *   next request for it reaches the consent page again instead of being narrowed away.
 *
 * Rejections (`grant.rejected`) come only from the tool policy here: the consent page has no
 * per-scope refusal, so every rejected MCP scope is one the policy refused.
 */
import type { Grant } from 'oidc-provider';

type ScopeRecord = { resources?: Record<string, string>; openid?: { scope?: string } };

const scopeSet = (value: string | undefined) => new Set((value ?? '').split(' ').filter(Boolean));

/**
 * The rejections a grant should hold for one side (the MCP resource, or the OpenID scopes, which
 * include the MCP scopes: provider.ts `scopes`): what is forbidden now among what it holds or refused.
 */
function nextRejections(
  held: Set<string>,
  rejected: Set<string>,
  forbidden: Set<string>,
): Set<string> | undefined {
  const next = new Set([...rejected].filter((scope) => forbidden.has(scope)));
  for (const scope of held) if (forbidden.has(scope)) next.add(scope);
  const same = next.size === rejected.size && [...next].every((scope) => rejected.has(scope));
  return same ? undefined : next;
}

/** True when the grant changed (and was saved). */
export async function alignGrantWithToolPolicy(
  grant: Grant,
  resource: string,
  forbiddenOf: (scopes: string[]) => Promise<string[]>,
): Promise<boolean> {
  const record = grant as unknown as {
    resources?: Record<string, string>;
    openid?: { scope?: string };
    rejected?: ScopeRecord;
  };
  const heldResource = scopeSet(record.resources?.[resource]);
  const rejectedResource = scopeSet(record.rejected?.resources?.[resource]);
  const heldOidc = scopeSet(record.openid?.scope);
  const rejectedOidc = scopeSet(record.rejected?.openid?.scope);
  const all = new Set([...heldResource, ...rejectedResource, ...heldOidc, ...rejectedOidc]);
  all.delete('openid');
  if (all.size === 0) return false;
  const forbidden = new Set(await forbiddenOf([...all]));
  const resourceNext = nextRejections(heldResource, rejectedResource, forbidden);
  const oidcNext = nextRejections(heldOidc, rejectedOidc, forbidden);
  if (!resourceNext && !oidcNext) return false;
  record.rejected ??= {};
  const rejected = record.rejected;
  if (resourceNext) {
    rejected.resources ??= {};
    if (resourceNext.size > 0) rejected.resources[resource] = [...resourceNext].join(' ');
    else delete rejected.resources[resource];
  }
  if (oidcNext) {
    rejected.openid ??= {};
    if (oidcNext.size > 0) rejected.openid.scope = [...oidcNext].join(' ');
    else delete rejected.openid.scope;
  }
  await grant.save();
  return true;
}
