/**
 * The gateway's side of revocation at once: it listens to the authorization server's revocation
 * announcements and drops the introspection cache entries they name; while it cannot hear them it
 * fails safe, dropping the cache and reusing an answer for at most a second (design §3), and so it
 * does while the stream, connected, has not been heard for a second and a half.
 */
import type { Logger } from '../shared/logging.ts';
import { createRevocationListener, type RevocationListener } from '../shared/revocation-listener.ts';
import { type TokenTagKey, tokenTagKey } from '../shared/token-tag.ts';
import type { IntrospectionCache } from './introspection-cache.ts';

/** While revocations cannot be heard, an introspection answer is reused for at most this long. */
export const DISCONNECTED_CACHE_SECONDS = 1;

export function followRevocations(
  cache: IntrospectionCache,
  connection: { authorizationServerUrl: string; clientId: string; clientSecret: string; logger: Logger },
  /** Receives the key of the token tags the authorization server says with `ready`. */
  onTokenTagKey: (key: TokenTagKey) => void = () => {},
): RevocationListener {
  const listener = createRevocationListener({
    ...connection,
    onReady: (info) => {
      const key =
        typeof info.token_tag_key === 'string' ? Buffer.from(info.token_tag_key, 'base64url') : undefined;
      // Kept when the stream drops: the key does not change while the server's key material does not.
      if (key && key.length >= 32) onTokenTagKey(tokenTagKey(key));
    },
    onEvent: (event) => {
      if (event.type === 'grant') cache.dropGrant(event.grant_id);
      else if (event.type === 'token') cache.dropToken(event.token_hash);
      else if (event.type === 'subject') cache.dropSubject(event.sub);
      else cache.dropClient(event.client_id);
    },
    onReset: () => cache.clear(),
    onStatus: (connected) => {
      if (connected) {
        cache.bound(undefined);
      } else {
        cache.clear();
        cache.bound(DISCONNECTED_CACHE_SECONDS);
      }
    },
  });
  // Connected but unheard lately (a stalled stream): answers older than a second are asked again.
  cache.trustWhile(() => listener.hearing(), DISCONNECTED_CACHE_SECONDS);
  return listener;
}
