/**
 * The PostgreSQL store's whole schema: every part's migrations, in the order they run. A part
 * appends its own list here once; its ids say which part a table belongs to.
 */

import { DIRECTORY_MIGRATIONS } from '../../admin/postgres-directory.ts';
import { OPERATION_APPROVAL_MIGRATIONS } from '../../approvals/postgres-operation-approvals.ts';
import { AUDIT_MIGRATIONS } from '../../audit/postgres-audit-store.ts';
import { RATE_LIMIT_MIGRATIONS } from '../../http/postgres-rate-limit.ts';
import { SIGNING_KEY_MIGRATIONS } from '../../keys/postgres-key-store.ts';
import { ACCOUNT_MIGRATIONS } from '../../login/postgres-accounts.ts';
import { DEV_INBOX_MIGRATIONS } from '../../login/postgres-dev-inbox.ts';
import { ONE_TIME_CODE_MIGRATIONS } from '../../login/postgres-one-time-codes.ts';
import { REVOCATION_LOG_MIGRATIONS } from '../../revocation/postgres-event-log.ts';
import { GENERATED_SECRET_MIGRATIONS } from '../generated-secrets.ts';
import type { Migration } from './migrations.ts';
import { OIDC_MODEL_MIGRATIONS } from './postgres-oidc-store.ts';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  ...OIDC_MODEL_MIGRATIONS,
  ...AUDIT_MIGRATIONS,
  ...RATE_LIMIT_MIGRATIONS,
  ...REVOCATION_LOG_MIGRATIONS,
  ...ACCOUNT_MIGRATIONS,
  ...ONE_TIME_CODE_MIGRATIONS,
  ...DEV_INBOX_MIGRATIONS,
  ...DIRECTORY_MIGRATIONS,
  ...SIGNING_KEY_MIGRATIONS,
  ...GENERATED_SECRET_MIGRATIONS,
  ...OPERATION_APPROVAL_MIGRATIONS,
];
