/**
 * The customers API: a caller reads their own customer record and nobody else's.
 *
 *   GET /customers/me    → 200 CustomerRecord | 404 (no record for this caller)
 *   GET /customers/{id}  → 200 CustomerRecord when it is the caller's own | 403 otherwise
 *
 * `/customers/{id}` answers 403 alike for another user's record and for an id that does not
 * exist, so ids cannot be probed.
 */
import type { ApisConfig } from '../shared/config/schema.ts';
import type { AccessTokenPayload, AccessTokenVerifier } from '../shared/jwt.ts';
import { ApiError, notFound } from './api-error.ts';
import { CUSTOMERS, type CustomerRecord } from './customers-data.ts';
import type { Api } from './router.ts';

export const CUSTOMERS_API_NAME = 'Customers API';

/**
 * The caller's own record: matched on `sub`, or on `email` when the token says it is verified
 * (`email_verified: true`), so an unverified address cannot claim someone else's record.
 */
export function findOwnRecord(
  records: readonly CustomerRecord[],
  claims: Pick<AccessTokenPayload, 'sub'> & { email?: unknown; email_verified?: unknown },
): CustomerRecord | undefined {
  const email =
    claims.email_verified === true && typeof claims.email === 'string'
      ? claims.email.toLowerCase()
      : undefined;
  return (
    records.find((record) => record.sub !== undefined && record.sub === claims.sub) ??
    (email ? records.find((record) => record.email.toLowerCase() === email) : undefined)
  );
}

export interface CustomersApiOptions {
  config: ApisConfig['customers'];
  verifier: AccessTokenVerifier;
  records?: readonly CustomerRecord[];
}

export function createCustomersApi(options: CustomersApiOptions): Api {
  const records = options.records ?? CUSTOMERS;
  const scope = options.config.readScope;
  return {
    name: CUSTOMERS_API_NAME,
    basePath: 'customers',
    verifier: options.verifier,
    routes: [
      {
        method: 'GET',
        path: '/me',
        scope,
        handle({ claims }) {
          const own = findOwnRecord(records, claims);
          if (!own) throw notFound('there is no customer record for you');
          return { status: 200, body: own };
        },
      },
      {
        method: 'GET',
        path: '/{id}',
        scope,
        handle({ claims, params }) {
          const own = findOwnRecord(records, claims);
          if (!own || own.id !== params.id) {
            throw new ApiError(403, 'forbidden', 'you can read only your own customer record');
          }
          return { status: 200, body: own };
        },
      },
    ],
  };
}
