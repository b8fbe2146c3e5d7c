/**
 * Every access token (user and workload) the authorization server issues carries a tag
 * (src/shared/token-tag.ts), so the gateway refuses made-up tokens without an introspection.
 *
 * oidc-provider generates an opaque token's value in the model's `generateTokenId` (256 random bits
 * by default); the value is also the token's id in the store, so the tag simply becomes part of it.
 * Only the two kinds the gateway sees are tagged; codes, refresh tokens and the rest are not.
 */
import type Provider from 'oidc-provider';
import { tagToken, tokenTagKey } from '../../shared/token-tag.ts';

type TokenModel = { prototype: { generateTokenId(): string } };

export function tagIssuedTokens(provider: Provider, bytes: Uint8Array): void {
  const key = tokenTagKey(bytes);
  for (const model of [provider.AccessToken, provider.ClientCredentials] as unknown as TokenModel[]) {
    const generate = model.prototype.generateTokenId;
    model.prototype.generateTokenId = function generateTaggedTokenId(this: unknown) {
      return tagToken(generate.call(this), key);
    };
  }
}
