/**
 * The approval queue's gate (configuration `clientApproval`): per class of client that no
 * administrator registered, `allow`, `approval` or `deny`.
 *
 * Under `approval`, a client's first authorization, once the user has signed in (so the queue can
 * say who tried it), ends on a page that says an administrator must approve it, and the client
 * joins the queue with what it asked for. When an administrator approves it, the user's next
 * attempt goes on to consent; a denied client is refused from then on. Pre-registered clients are
 * always allowed: an administrator registered them.
 */
import type Provider from 'oidc-provider';
import type { AuthorizationServerConfig } from '../../shared/config/schema.ts';
import type { Logger } from '../../shared/logging.ts';
import type { ClientClassifier } from '../clients/client-classification.ts';
import type { ApprovalClass, Directory } from './directory.ts';

export type GateAnswer =
  | { outcome: 'allow' }
  | { outcome: 'pending' | 'denied'; clientName: string; redirectHost: string };

export type ApprovalGate = (
  clientId: string,
  attempt: { email: string | undefined; scopes: string[]; redirectUri: string | undefined },
) => Promise<GateAnswer>;

export function createApprovalGate(options: {
  policy: AuthorizationServerConfig['clientApproval'];
  directory: Directory;
  classifier: ClientClassifier;
  provider: Provider;
  logger: Logger;
}): ApprovalGate {
  const classOf = async (clientId: string): Promise<ApprovalClass | undefined> => {
    const classification = await options.classifier.classify(clientId);
    if (classification.kind === 'pre-registered') return undefined;
    if (classification.kind === 'cimd') return classification.verified ? 'cimdTrusted' : 'cimdOther';
    return 'dynamic';
  };

  return async (clientId, attempt) => {
    const clientClass = await classOf(clientId);
    if (!clientClass) return { outcome: 'allow' };
    const rule = options.policy[clientClass];
    if (rule === 'allow') return { outcome: 'allow' };
    const client = await options.provider.Client.find(clientId);
    const metadata = (client?.metadata() ?? {}) as Record<string, unknown>;
    const clientName = String(metadata.client_name ?? clientId);
    const redirectHost = URL.parse(attempt.redirectUri ?? '')?.host || 'unknown';
    if (rule === 'deny') {
      options.logger.audit('client.approval', {
        outcome: 'denied',
        client_id: clientId,
        reason: 'policy denies its class',
      });
      return { outcome: 'denied', clientName, redirectHost };
    }
    const decided = await options.directory.approvals.get(clientId);
    if (decided?.status === 'approved') return { outcome: 'allow' };
    if (decided?.status === 'denied') return { outcome: 'denied', clientName, redirectHost };
    // Not signed in yet: let the user sign in first, so the queue can say who tried it.
    if (!attempt.email) return { outcome: 'allow' };
    const { client_secret: _secret, registration_access_token: _rat, ...presented } = metadata;
    await options.directory.approvals.request({
      clientId,
      clientClass,
      name: clientName,
      redirectUris: Array.isArray(metadata.redirect_uris) ? metadata.redirect_uris.map(String) : [],
      scopes: attempt.scopes,
      metadata: presented,
      requestedBy: attempt.email,
      requestedAt: Date.now(),
    });
    options.logger.audit('client.approval', {
      outcome: 'denied',
      client_id: clientId,
      reason: 'waiting for an administrator',
    });
    return { outcome: 'pending', clientName, redirectHost };
  };
}
