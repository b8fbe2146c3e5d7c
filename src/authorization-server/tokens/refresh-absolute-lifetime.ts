/**
 * A sign-in's refresh tokens end at `refreshTokens.absoluteLifetimeSeconds` after the first of
 * them (oidc-provider's `iiat`, carried across rotations), however often they rotate.
 *
 * Each new refresh token's lifetime is cut at that end (refresh-token-policy.ts, refreshTokenTtl),
 * but a lifetime is worked out when the token is saved, at least one second: a refresh checked
 * just before the end could still mint a token that outlives it. So the lookup decides: a refresh
 * token whose sign-in is past its absolute lifetime is not found (RFC 6749 §5.2 invalid_grant at
 * the token endpoint; inactive at introspection), whatever its own expiry says.
 */
import type Provider from 'oidc-provider';

export function endRefreshTokensAtAbsoluteLifetime(
  provider: Provider,
  absoluteLifetimeSeconds: number,
): void {
  const model = provider.RefreshToken;
  const find = model.find.bind(model) as (
    jti: string,
    options?: { ignoreExpiration?: boolean },
  ) => Promise<{ iiat?: number } | undefined>;
  model.find = (async (jti: string, options?: { ignoreExpiration?: boolean }) => {
    const token = await find(jti, options);
    if (!token) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (typeof token.iiat === 'number' && now >= token.iiat + absoluteLifetimeSeconds) return undefined;
    return token;
  }) as typeof model.find;
}
