/**
 * The workload clients the token benchmark asks tokens for, the same at Gatehouse's authorization
 * server (bench/config.ts registers the second) and at the bare oidc-provider
 * (bench/baseline/authorization-server.ts). No imports, so that the baseline loads nothing of
 * Gatehouse's code.
 */

/** Gatehouse's pre-registered `private_key_jwt` workload (its key is generated at first start). */
export const KEY_WORKLOAD = 'example-workload';

/** A bench-only `client_secret_basic` workload. */
export const SECRET_WORKLOAD = {
  clientId: 'bench-secret-workload',
  /** A literal secret (the bench's own, never a deployment's). */
  secret: 'bench-only-secret-0123456789abcdefghijklmnopqrstuvwxyz',
};

/** The scope both ask for. */
export const WORKLOAD_SCOPE = 'stocks:read';
