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
import Provider, { type Grant } from 'oidc-provider';

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

/**
 * True when the grant changed (and was saved). Every resource indicator that names the MCP server
 * counts (`isMcpResource`): oidc-provider keys a grant's resources by the indicator as requested, so
 * `…/mcp` and `…/mcp/` are two keys for one resource.
 */
export async function alignGrantWithToolPolicy(
  grant: Grant,
  isMcpResource: (indicator: string) => boolean,
  forbiddenOf: (scopes: string[]) => Promise<string[]>,
): Promise<boolean> {
  const record = grant as unknown as {
    resources?: Record<string, string>;
    openid?: { scope?: string };
    rejected?: ScopeRecord;
  };
  const indicators = [
    ...new Set([...Object.keys(record.resources ?? {}), ...Object.keys(record.rejected?.resources ?? {})]),
  ].filter(isMcpResource);
  const sides = indicators.map((indicator) => ({
    indicator,
    held: scopeSet(record.resources?.[indicator]),
    rejected: scopeSet(record.rejected?.resources?.[indicator]),
  }));
  const heldOidc = scopeSet(record.openid?.scope);
  const rejectedOidc = scopeSet(record.rejected?.openid?.scope);
  const all = new Set([...heldOidc, ...rejectedOidc]);
  for (const side of sides) for (const scope of [...side.held, ...side.rejected]) all.add(scope);
  all.delete('openid');
  if (all.size === 0) return false;
  const forbidden = new Set(await forbiddenOf([...all]));
  const changes = sides
    .map((side) => ({ indicator: side.indicator, next: nextRejections(side.held, side.rejected, forbidden) }))
    .filter((change) => change.next !== undefined);
  const oidcNext = nextRejections(heldOidc, rejectedOidc, forbidden);
  if (changes.length === 0 && !oidcNext) return false;
  record.rejected ??= {};
  const rejected = record.rejected;
  for (const { indicator, next } of changes) {
    rejected.resources ??= {};
    if (next!.size > 0) rejected.resources[indicator] = [...next!].join(' ');
    else delete rejected.resources[indicator];
  }
  if (oidcNext) {
    rejected.openid ??= {};
    if (oidcNext.size > 0) rejected.openid.scope = [...oidcNext].join(' ');
    else delete rejected.openid.scope;
  }
  await grant.save();
  return true;
}

interface RefreshContext {
  oidc?: { route?: string; params?: { grant_type?: unknown } };
}

/**
 * A refresh issues what the grant holds (oidc-provider's refresh_token grant filters the new
 * access token through it) without loading it through `loadExistingGrant`: the grant is aligned on
 * that lookup too, so a scope closed since the sign-in is not refreshed back into a token.
 */
export function alignGrantsOnRefresh(
  provider: Provider,
  isMcpResource: (indicator: string) => boolean,
  forbiddenOf: (accountId: string, scopes: string[]) => Promise<string[]>,
): void {
  const model = provider.Grant;
  const find = model.find.bind(model) as (id: string, options?: unknown) => Promise<Grant | undefined>;
  model.find = (async (id: string, options?: unknown) => {
    const grant = await find(id, options);
    const params = (Provider.ctx as RefreshContext | undefined)?.oidc?.params;
    if (grant?.accountId && params?.grant_type === 'refresh_token') {
      const accountId = grant.accountId;
      await alignGrantWithToolPolicy(grant, isMcpResource, (scopes) => forbiddenOf(accountId, scopes));
    }
    return grant;
  }) as typeof model.find;
}
