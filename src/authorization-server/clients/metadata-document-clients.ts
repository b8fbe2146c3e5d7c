/**
 * Client ID Metadata Documents as oidc-provider clients.
 *
 * oidc-provider's own CIMD feature accepts only https documents from public addresses, and caches
 * no failures; Gatehouse needs a trust policy, a failure backoff and a development switch for
 * loopback documents, so documents are resolved here (client-metadata-document.ts) and handed to
 * oidc-provider through the Client adapter's `find`, where it validates them like any client.
 */
import { type Adapter, errors } from 'oidc-provider';
import type { Logger } from '../../shared/logging.ts';
import { withFind } from '../store/sqlite-store.ts';
import {
  ClientMetadataDocumentError,
  type ClientMetadataDocumentResolver,
} from './client-metadata-document.ts';
import type { TrustLevel } from './client-trust-policy.ts';
import { applyClientPolicy, type ClientPolicy, ClientPolicyError } from './registration-policy.ts';

export interface MetadataDocumentClientsOptions {
  resolver: ClientMetadataDocumentResolver;
  isDocumentUrl: (clientId: string) => boolean;
  /** The trusted domains are the directory's: asked at each lookup. */
  trustOf: (clientId: string) => Promise<TrustLevel>;
  policy: ClientPolicy;
  logger: Logger;
}

export function withMetadataDocumentClients(
  adapter: Adapter,
  options: MetadataDocumentClientsOptions,
): Adapter {
  const { resolver, logger } = options;
  return withFind(adapter, async (id) => {
    if (!options.isDocumentUrl(id)) return adapter.find(id);
    if ((await options.trustOf(id)) === 'denied') {
      logger.audit('client.metadata_document', {
        outcome: 'denied',
        client_id: id,
        reason: 'trust policy',
      });
      throw new errors.InvalidClient('this client is not allowed by the server policy');
    }
    try {
      const metadata = structuredClone(await resolver.resolve(id));
      applyClientPolicy(metadata, options.policy, 'cimd');
      return metadata;
    } catch (error) {
      if (error instanceof ClientMetadataDocumentError || error instanceof ClientPolicyError) {
        const description = error instanceof ClientMetadataDocumentError ? error.description : error.message;
        logger.audit('client.metadata_document', {
          outcome: 'failure',
          client_id: id,
          reason: description,
        });
        throw new errors.InvalidClient(`client metadata document rejected: ${description}`);
      }
      throw error;
    }
  });
}
