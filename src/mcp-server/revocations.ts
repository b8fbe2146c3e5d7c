/**
 * The MCP server's side of revocation at once: it listens to the authorization server's
 * revocation announcements, refuses from then on the phantom tokens of what was revoked
 * (revoked-tokens.ts) and drops the exchanged tokens cached for it; while it cannot hear them it
 * caches no exchanged token at all (design §3).
 */
import type { Logger } from '../shared/logging.ts';
import { createRevocationListener, type RevocationListener } from '../shared/revocation-listener.ts';
import type { RevokedTokens } from './revoked-tokens.ts';
import type { TokenExchangeClient } from './token-exchange-client.ts';

export function followRevocations(
  revoked: RevokedTokens,
  exchange: TokenExchangeClient,
  connection: { authorizationServerUrl: string; clientId: string; clientSecret: string; logger: Logger },
): RevocationListener {
  const listener = createRevocationListener({
    ...connection,
    onEvent: (event) => {
      revoked.record(event);
      if (event.type === 'grant') exchange.dropGrant(event.grant_id);
      else if (event.type === 'subject') exchange.dropSubject(event.sub);
      else if (event.type === 'client') exchange.dropClient(event.client_id);
      // A workload token has no grant: its exchanged tokens are found by the opaque token's hash.
      else exchange.dropToken(event.token_hash);
    },
    onReset: () => exchange.clear(),
    onStatus: (connected) => exchange.suspend(!connected),
  });
  // Connected but unheard lately (a stalled stream): every call exchanges afresh.
  exchange.trustWhile(() => listener.hearing());
  return listener;
}
