/**
 * A refresh request's `scope` narrowed to what the grant holds, instead of refused.
 *
 * RFC 6749 §6 says a refresh request's scope must not include a scope not originally granted;
 * oidc-provider refuses such a request with invalid_scope. Some clients send a fixed scope on every
 * refresh, wider than what the user consented to: LibreChat sends the scope the registration
 * response gave it (`openid` and every MCP scope), so against a strict server its first refresh
 * fails and every user signs in again when the access token runs out. RFC 6749 §3.3 lets the
 * server ignore part of a requested scope, saying what it issued in the response's `scope`
 * (oidc-provider always does), so the requested scopes the refresh token does not hold are dropped
 * before the grant checks them. Nothing can be gained by it: what is issued stays within the grant.
 * A request none of whose scopes the token holds is left as it is, and refused.
 */
import Provider from 'oidc-provider';

interface RefreshRequestContext {
  oidc?: { route?: string; params?: { grant_type?: unknown; scope?: unknown } };
}

/** Installs the narrowing on the provider's RefreshToken lookup. */
export function narrowRefreshScopes(provider: Provider): void {
  const model = provider.RefreshToken;
  const find = model.find.bind(model) as (
    jti: string,
    options?: { ignoreExpiration?: boolean },
  ) => Promise<{ scopes: Set<string> } | undefined>;
  model.find = (async (jti: string, options?: { ignoreExpiration?: boolean }) => {
    const token = await find(jti, options);
    const params = (Provider.ctx as RefreshRequestContext | undefined)?.oidc?.params;
    if (token && params?.grant_type === 'refresh_token' && typeof params.scope === 'string') {
      const held = token.scopes;
      const kept = params.scope.split(' ').filter((scope) => scope !== '' && held.has(scope));
      if (kept.length > 0) params.scope = kept.join(' ');
    }
    return token;
  }) as typeof model.find;
}
