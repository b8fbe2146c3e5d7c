/**
 * Who calls the admin API: an access token (RFC 6750 §2.1, `Authorization: Bearer`) the
 * authorization server itself issued by client credentials to a client of role `admin`, for the
 * admin API's audience, unexpired, its client still enabled. The token is opaque, so it is looked
 * up in the store directly: no introspection round trip to ourselves.
 *
 * RFC 6750 §3: no credentials → 401 with a bare challenge; a bad one → 401 `invalid_token`; too
 * little scope → 403 `insufficient_scope` naming the scope needed.
 */
import type Provider from 'oidc-provider';
import type { ClientClassifier } from '../clients/client-classification.ts';
import { notFoundUnlessUnavailable } from '../store/postgres/connection.ts';
import { AdminError } from './admin-error.ts';

export type AdminScope = 'admin' | 'admin.read';

export interface AdminCaller {
  /** `client:<client_id>`: the audit trail's actor. */
  actor: string;
  scopes: Set<string>;
}

export class AdminAuthError extends AdminError {
  readonly challenge: string;
  constructor(status: 401 | 403, code: string, message: string, challenge: string) {
    super(status, code, message);
    this.challenge = challenge;
  }
}

const REALM = 'realm="gatehouse-admin"';
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/;

export function createAdminTokenCheck(options: {
  provider: Provider;
  classifier: ClientClassifier;
  audience: string;
  isDisabledClient: (clientId: string) => Promise<boolean>;
}) {
  const invalidToken = (description: string) =>
    new AdminAuthError(
      401,
      'invalid_token',
      description,
      `Bearer ${REALM}, error="invalid_token", error_description="${description}"`,
    );

  /** The caller of a request, or an AdminAuthError. `scope` is what the operation needs. */
  return async (authorization: string | undefined, scope: AdminScope): Promise<AdminCaller> => {
    if (!authorization)
      throw new AdminAuthError(401, 'invalid_request', 'an access token is required', `Bearer ${REALM}`);
    const value = BEARER.exec(authorization)?.[1];
    if (!value || value.length > 512) throw invalidToken('the access token is malformed');
    const token = await options.provider.ClientCredentials.find(value).catch(notFoundUnlessUnavailable);
    if (!token || token.isExpired) throw invalidToken('the access token is not valid');
    const audiences = ([] as unknown[]).concat((token as unknown as { aud?: unknown }).aud ?? []);
    if (!audiences.includes(options.audience))
      throw invalidToken('the access token is not for the admin API');
    const clientId = String(token.clientId);
    if (
      options.classifier.configured(clientId)?.role !== 'admin' ||
      (await options.isDisabledClient(clientId))
    )
      throw invalidToken('the access token is not valid');
    // A DPoP-bound token (RFC 9449) needs a proof this API does not check: refuse it rather than
    // accept it as a bearer token, which would defeat the binding.
    if ((token as unknown as { jkt?: string }).jkt)
      throw invalidToken('DPoP-bound tokens are not accepted here; request a token without a DPoP proof');
    const scopes = new Set(
      String(token.scope ?? '')
        .split(' ')
        .filter(Boolean),
    );
    const enough =
      scope === 'admin.read' ? scopes.has('admin') || scopes.has('admin.read') : scopes.has('admin');
    if (!enough)
      throw new AdminAuthError(
        403,
        'insufficient_scope',
        `this operation needs the scope "${scope}" (request the token with scope=${scope})`,
        `Bearer ${REALM}, error="insufficient_scope", scope="${scope}"`,
      );
    return { actor: `client:${clientId}`, scopes };
  };
}
