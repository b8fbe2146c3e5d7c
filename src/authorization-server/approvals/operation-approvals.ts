/**
 * Approvals of single operations (issue 13): a person approves one tool call, with these exact
 * arguments, by this agent, for a few minutes; the token exchange for that call uses the approval
 * up, once (tokens/token-exchange.ts). Two implementations behind this interface:
 * sqlite-operation-approvals.ts (one instance) and postgres-operation-approvals.ts (every instance
 * on one database); `consume` is one atomic statement in both, so two calls racing for one approval
 * cannot both win.
 */

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'used';

export interface OperationApproval {
  id: string;
  /** The user whose agent asks; only they may decide. */
  sub: string;
  clientId: string;
  grantId?: string | undefined;
  tool: string;
  /** shared/operation-approval.ts `argumentsDigest` of the arguments. */
  argumentsDigest: string;
  /** The arguments as the agent sent them (bounded), to show the person what they approve. */
  arguments: Record<string, unknown>;
  /** The agent request that asked, for the audit trail. */
  requestId?: string | undefined;
  status: ApprovalStatus;
  createdAt: number;
  expiresAt: number;
  decidedAt?: number | undefined;
  usedAt?: number | undefined;
}

export type NewApproval = Omit<OperationApproval, 'status' | 'decidedAt' | 'usedAt'>;

/**
 * What an approval is of: this user's call of this tool with these arguments, by this agent, under
 * this grant (a revoked grant's approvals serve nothing, even for the same client signed in again).
 */
export type Operation = Pick<OperationApproval, 'sub' | 'clientId' | 'tool' | 'argumentsDigest'> & {
  grantId: string;
};

export interface OperationApprovals {
  /** A new pending approval; when one of the same operation is pending already, that one. */
  create(approval: NewApproval): Promise<OperationApproval>;
  get(id: string): Promise<OperationApproval | undefined>;
  /**
   * The newest unexpired approval of this operation that was not used yet: pending, approved or
   * denied (a denial stands until it expires, so a retry is told, not asked again at once).
   */
  findCurrent(operation: Operation, now: number): Promise<OperationApproval | undefined>;
  /**
   * Pending and unexpired → approved or denied, lasting from now until `expiresAt` (an approval
   * waits that long for the agent's retry; a denial stands that long); anything else changes
   * nothing (undefined).
   */
  decide(
    id: string,
    status: 'approved' | 'denied',
    now: number,
    expiresAt: number,
  ): Promise<OperationApproval | undefined>;
  /**
   * Approved and unexpired → used, atomically: the one approval of this operation that may serve
   * one call. Undefined when there is none.
   */
  consume(operation: Operation, now: number): Promise<OperationApproval | undefined>;
  /** The latest use of an approval of this operation since `since`: an identical call that ran. */
  lastUsed(operation: Operation, since: number): Promise<OperationApproval | undefined>;
  /** Forgets approvals that ended (expired or used) before `before`; how many went. */
  purge(before: number): Promise<number>;
}

/** A store row (snake_case columns), as both stores read it. */
export function approvalOf(row: Record<string, unknown>): OperationApproval {
  const args = typeof row.arguments === 'string' ? JSON.parse(row.arguments) : row.arguments;
  return {
    id: String(row.id),
    sub: String(row.sub),
    clientId: String(row.client_id),
    ...(row.grant_id ? { grantId: String(row.grant_id) } : {}),
    tool: String(row.tool),
    argumentsDigest: String(row.arguments_digest),
    arguments: args as Record<string, unknown>,
    ...(row.request_id ? { requestId: String(row.request_id) } : {}),
    status: row.status as ApprovalStatus,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    ...(row.decided_at !== null && row.decided_at !== undefined ? { decidedAt: Number(row.decided_at) } : {}),
    ...(row.used_at !== null && row.used_at !== undefined ? { usedAt: Number(row.used_at) } : {}),
  };
}
