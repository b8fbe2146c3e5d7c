/**
 * OAuth 2.0 Token Exchange (RFC 8693) for the MCP server: an agent's token for the MCP server in,
 * a JWT for one upstream API out.
 *
 * Invariants (design §3): the result never widens scope (MCP scopes map down through a configured
 * table, and a requested `scope` must be a subset of that), never outlives the subject token, and is
 * audience-bound to the one API asked for. Only clients named in `tokenExchange` may exchange, and
 * only for their listed targets.
 */
import { type JWTVerifyGetKey, jwtVerify } from 'jose';
import { errors, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import type { ExchangePolicyConfig } from '../../shared/config/schema.ts';
import type { Logger } from '../../shared/logging.ts';
import { TOOL_CALL_DETAILS_TYPE, toolCallDetailsOf } from '../../shared/operation-approval.ts';
import { requestIdFrom } from '../../shared/request-id.ts';
import { PERMITTED_TOOLS_CLAIM, permittedToolsOf, TOOL_CLAIM } from '../../shared/tool-claims.ts';
import { toolNameFrom } from '../../shared/tool-header.ts';
import type { OperationApproval, OperationApprovals } from '../approvals/operation-approvals.ts';
import { ACCESS_TOKEN_ALG } from '../keys/signing-key.ts';
import { normalizeResourceUri, type ResourceRegistry } from '../resources.ts';
import { type AccessTokenSigner, extraClaims } from './access-token-jwt.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const SUBJECT_TOKEN_TYPES = new Set([ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE]);

export const TOKEN_EXCHANGE_PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'resource',
  'audience',
  'scope',
  'actor_token',
  'actor_token_type',
  // RFC 9396: the approved tool call a token for an approval-bound tool must name.
  'authorization_details',
];

/** What the exchange needs to know about the token being exchanged. */
export interface Subject {
  sub: string;
  clientId: string;
  scopes: string[];
  exp: number;
  extra: Record<string, unknown>;
  act?: Record<string, unknown>;
  grantId?: string;
  /** SHA-256 of the opaque token a phantom token stands for (its `token_hash`). */
  tokenHash?: string;
  /** When the token was issued (a phantom token's `iat`), seconds since the epoch. */
  issuedAt?: number;
}

export interface TokenExchangeDependencies {
  issuer: string;
  resources: ResourceRegistry;
  policies: ExchangePolicyConfig[];
  /**
   * The access-token keys published now (current, next and retired), so that a phantom token signed
   * before a rotation still exchanges until it expires.
   */
  verificationKey: JWTVerifyGetKey;
  sign: AccessTokenSigner;
  logger: Logger;
  /**
   * True for a subject that was a user and is no longer approved: their tokens stop working. Async:
   * the account is read from the store (shared by every instance with PostgreSQL), at each exchange.
   */
  isRemovedUser: (sub: string) => Promise<boolean>;
  /** True when the opaque token with this hash was revoked (the revocation log's `token` events). */
  isRevokedToken: (tokenHash: string) => Promise<boolean>;
  /** True when the client was deleted at or after `at` (the revocation log's `client` events). */
  isClientRemovedSince: (clientId: string, at: number) => Promise<boolean>;
  /** Each tool's API audience and API scopes (shared/config/tool-api-scopes.ts). */
  tools: ReadonlyMap<
    string,
    { audience: string; apiScopes: readonly string[]; amountArgument?: string | undefined }
  >;
  /** The tools whose every call needs the user's approval (`mcpServer.tools[].approval`). */
  approvalTools: ReadonlySet<string>;
  approvals: Pick<OperationApprovals, 'consume'>;
}

const looksLikeJwt = (value: string) => value.split('.').length === 3;

/** The approved operation's amount (RFC 9396 details may say "how much"), where the tool has one. */
function amountOf(approval: OperationApproval, argument: string | undefined) {
  const value = argument ? approval.arguments[argument] : undefined;
  return typeof value === 'number' && Number.isFinite(value)
    ? { amount: { argument: argument!, value } }
    : {};
}

/**
 * The phantom JWT the gateway forwarded, verified like any access token for the MCP server: what
 * token exchange and an approval request (approvals/approval-requests.ts) rest on.
 */
export async function verifyPhantomSubject(
  value: string,
  options: { issuer: string; mcpUri: string; key: JWTVerifyGetKey },
): Promise<Subject> {
  try {
    const { payload } = await jwtVerify(value, options.key, {
      issuer: options.issuer,
      audience: options.mcpUri,
      typ: 'at+jwt',
      algorithms: [ACCESS_TOKEN_ALG],
    });
    if (
      typeof payload.sub !== 'string' ||
      typeof payload.client_id !== 'string' ||
      typeof payload.exp !== 'number'
    ) {
      throw new Error('missing claims');
    }
    return {
      sub: payload.sub,
      clientId: payload.client_id,
      scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
      exp: payload.exp,
      extra: extraClaims(payload),
      act: payload.act as Record<string, unknown> | undefined,
      ...(typeof payload.grant_id === 'string' ? { grantId: payload.grant_id } : {}),
      ...(typeof payload.token_hash === 'string' ? { tokenHash: payload.token_hash } : {}),
      ...(typeof payload.iat === 'number' ? { issuedAt: payload.iat } : {}),
    };
  } catch {
    throw new errors.InvalidGrant('subject_token is invalid, expired or not meant for the MCP server');
  }
}

export function createTokenExchangeHandler(provider: Provider, deps: TokenExchangeDependencies) {
  const policies = new Map(deps.policies.map((policy) => [policy.clientId, policy]));

  const subjectFromJwt = (value: string) =>
    verifyPhantomSubject(value, {
      issuer: deps.issuer,
      mcpUri: deps.resources.mcp.uri,
      key: deps.verificationKey,
    });

  /** An opaque token: looked up in the store, so a revoked grant is refused at once. */
  async function subjectFromOpaque(value: string): Promise<Subject> {
    const token = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
    const audiences = token ? [token.aud ?? []].flat() : [];
    if (!token || token.isExpired || !audiences.some((aud) => deps.resources.isMcpResource(aud))) {
      throw new errors.InvalidGrant('subject_token is invalid, expired or not meant for the MCP server');
    }
    // A DPoP-bound token is never accepted as a plain bearer credential (RFC 9449 §7.2); the MCP
    // server exchanges the phantom token, which carries no binding, never the agent's own token.
    if (token.isSenderConstrained()) {
      throw new errors.InvalidGrant(
        'subject_token is sender-constrained and cannot be exchanged as a bearer token',
      );
    }
    const grantId = 'grantId' in token ? (token.grantId as string | undefined) : undefined;
    if (grantId && !(await provider.Grant.find(grantId))) {
      throw new errors.InvalidGrant('subject_token has been revoked');
    }
    const accountId = 'accountId' in token ? (token.accountId as string | undefined) : undefined;
    return {
      sub: accountId ?? token.clientId!,
      clientId: token.clientId!,
      scopes: token.scope ? token.scope.split(' ') : [],
      exp: token.exp!,
      extra: extraClaims(token.extra as Record<string, unknown> | undefined),
      // For the audit record (the consent the exchange rests on); the grant was found just above.
      ...(grantId ? { grantId } : {}),
      ...(typeof token.iat === 'number' ? { issuedAt: token.iat } : {}),
    };
  }

  return async function tokenExchange(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params as Record<string, string | undefined>;
    const actor = ctx.oidc.client!.clientId;
    const policy = policies.get(actor);
    // The agent request this exchange serves and the tool call that caused it, as the MCP server
    // named them (src/shared/request-id.ts, tool-header.ts): taken only from a client allowed to
    // exchange (policies name mcp-server clients only, config/schema.ts), so nobody else can write
    // into the trail.
    const requestId = policy ? requestIdFrom(ctx.req.headers) : undefined;
    const tool = policy ? toolNameFrom(ctx.req.headers) : undefined;
    // Each record joins the tool call to what it rests on: the agent's client (`client_id`), its
    // user (`sub`) and grant (`grant_id`: the consent), the MCP server as `actor`, and the API.
    let subject: Subject | undefined;
    const audit = (fields: Parameters<Logger['audit']>[1]) =>
      deps.logger.audit('token.exchange', {
        ...(requestId ? { request_id: requestId } : {}),
        ...(tool ? { tool } : {}),
        ...(subject
          ? {
              sub: subject.sub,
              client_id: subject.clientId,
              ...(subject.grantId ? { grant_id: subject.grantId } : {}),
            }
          : {}),
        ...fields,
      });
    if (!policy) {
      audit({
        outcome: 'denied',
        actor,
        reason: 'client not allowed to exchange',
      });
      throw new errors.UnauthorizedClient('this client is not allowed to exchange tokens');
    }
    const subjectToken = params.subject_token;
    if (!subjectToken) throw new errors.InvalidRequest('missing required parameter subject_token');
    if (!params.subject_token_type || !SUBJECT_TOKEN_TYPES.has(params.subject_token_type)) {
      throw new errors.InvalidRequest('subject_token_type must be an access token or JWT token type');
    }
    if (params.requested_token_type && !SUBJECT_TOKEN_TYPES.has(params.requested_token_type)) {
      throw new errors.InvalidRequest('requested_token_type must be an access token or JWT token type');
    }
    if (params.actor_token || params.actor_token_type) {
      throw new errors.InvalidRequest('actor_token is not supported: the authenticated client is the actor');
    }
    // RFC 8693 §2.1: the target is named by `resource` or `audience`; here exactly one API.
    const targets = [params.resource, params.audience].filter((value): value is string => Boolean(value));
    if (targets.length === 0) throw new errors.InvalidTarget('resource or audience is required');
    if (targets.length === 2 && normalizeResourceUri(targets[0]!) !== normalizeResourceUri(targets[1]!)) {
      throw new errors.InvalidTarget('resource and audience name different targets');
    }
    const api = deps.resources.findApi(targets[0]!);
    const target = policy.targets.find(
      (candidate) => api && normalizeResourceUri(candidate.audience) === normalizeResourceUri(api.audience),
    );
    if (!api || !target) {
      audit({
        outcome: 'denied',
        actor,
        audience: targets[0],
        reason: 'target not allowed',
      });
      throw new errors.InvalidTarget('the requested audience is unknown or not allowed for this client');
    }

    try {
      subject = looksLikeJwt(subjectToken)
        ? await subjectFromJwt(subjectToken)
        : await subjectFromOpaque(subjectToken);
    } catch (error) {
      audit({
        outcome: 'denied',
        actor,
        audience: api.audience,
        reason: 'subject token refused',
      });
      throw error;
    }
    const refuseSubject = (reason: string, description: string): never => {
      audit({ outcome: 'denied', actor, audience: api.audience, reason });
      throw new errors.InvalidGrant(description);
    };
    // A phantom token outlives a revocation by up to the gateway's cache lifetime; its grant does not.
    const grant = subject.grantId ? await provider.Grant.find(subject.grantId) : undefined;
    if (
      subject.grantId &&
      (!grant || grant.accountId !== subject.sub || grant.clientId !== subject.clientId)
    ) {
      refuseSubject('grant revoked', 'subject_token has been revoked');
    }
    // A workload's token has no grant: its phantom token names the opaque token by hash instead.
    if (subject.tokenHash && (await deps.isRevokedToken(subject.tokenHash))) {
      refuseSubject('token revoked', 'subject_token has been revoked');
    }
    // A client deleted (RFC 7592, or as unused) takes its tokens with it, whatever their kind. A
    // phantom token without `iat` cannot show it was issued after the deletion.
    if (await deps.isClientRemovedSince(subject.clientId, subject.issuedAt ?? 0)) {
      refuseSubject('client removed', 'subject_token has been revoked');
    }
    if (await deps.isRemovedUser(subject.sub)) {
      refuseSubject('user no longer approved', 'the subject is no longer allowed to sign in');
    }

    // A user's token is exchanged for one call of one tool they may use (tools/tool-policy.ts: their
    // token names those tools), at that tool's API, for at most that tool's API scopes: whatever the
    // MCP server asks, and whether or not it names the tool. A workload's scopes are its policy.
    const isUser = subject.extra.client_type !== 'workload';
    const toolScopes = tool ? deps.tools.get(tool) : undefined;
    if (isUser) {
      if (!tool)
        refuseSubject('tool not named', "a user's token is exchanged for one tool call: name the tool");
      if (!toolScopes || !permittedToolsOf(subject.extra)?.has(tool!))
        refuseSubject('tool not permitted', `the subject may not use the ${tool} tool`);
      if (normalizeResourceUri(toolScopes!.audience) !== normalizeResourceUri(api.audience))
        refuseSubject('tool not at this API', `the ${tool} tool does not call this API`);
    }

    // Scopes map down: only what the subject's MCP scopes map to for this API, never more; for a
    // user, only what the tool needs of those.
    const mapped = new Set(
      subject.scopes
        .flatMap((scope) => target.scopeMap[scope] ?? [])
        .filter((scope) => !isUser || toolScopes!.apiScopes.includes(scope)),
    );
    let granted: string[];
    if (params.scope) {
      granted = [...new Set(params.scope.split(' ').filter(Boolean))];
      const wider = granted.filter((scope) => !mapped.has(scope));
      if (wider.length > 0) {
        audit({
          outcome: 'denied',
          actor,
          audience: api.audience,
          scope: granted.join(' '),
          reason: 'scope wider than subject token',
        });
        throw new errors.InvalidScope(
          'requested scope exceeds what the subject token allows',
          wider.join(' '),
        );
      }
    } else {
      granted = [...mapped];
    }
    if (granted.length === 0) {
      audit({ outcome: 'denied', actor, audience: api.audience, reason: 'no scope for this audience' });
      throw new errors.InvalidScope('the subject token carries no scope that maps to this audience', '');
    }

    // A tool whose calls need approval: this exact call must have been approved by the user, and
    // the approval is used up here, once (approvals/operation-approvals.ts).
    const details = params.authorization_details
      ? toolCallDetailsOf(params.authorization_details)
      : undefined;
    let approval: OperationApproval | undefined;
    if (tool && deps.approvalTools.has(tool)) {
      if (!details || details.tool !== tool) {
        audit({ outcome: 'denied', actor, audience: api.audience, reason: 'approval details missing' });
        throw new errors.InvalidAuthorizationDetails(
          `a call of ${tool} needs the user's approval: send authorization_details of type ${TOOL_CALL_DETAILS_TYPE} for it`,
        );
      }
      approval = subject.grantId
        ? await deps.approvals.consume(
            {
              sub: subject.sub,
              clientId: subject.clientId,
              tool,
              argumentsDigest: details.arguments_digest,
              grantId: subject.grantId,
            },
            Date.now(),
          )
        : undefined;
      if (!approval) {
        audit({ outcome: 'denied', actor, audience: api.audience, reason: 'no approval of this call' });
        throw new errors.InvalidAuthorizationDetails(
          'no approval of this exact call is waiting (none was given, it was used, or it expired): ask the user to approve it',
        );
      }
    } else if (params.authorization_details) {
      throw new errors.InvalidAuthorizationDetails(
        'authorization_details are only for calls of tools that need approval',
      );
    }

    // Never outlive the subject token; a token for one approved call lives a minute at most.
    const now = Math.floor(Date.now() / 1000);
    const exp = Math.min(
      now + (approval ? Math.min(api.accessTokenTtlSeconds, 60) : api.accessTokenTtlSeconds),
      subject.exp,
    );
    if (exp <= now) throw new errors.InvalidGrant('subject_token has expired');

    // RFC 8693 §4.1: `act` names the current actor; a prior actor nests inside it.
    const act = subject.act ? { sub: actor, act: subject.act } : { sub: actor };
    // The list of tools is for the MCP server; the API learns the one tool this token is for.
    const { [PERMITTED_TOOLS_CLAIM]: _tools, ...claims } = subject.extra;
    const accessToken = await deps.sign({
      ...claims,
      ...(tool ? { [TOOL_CLAIM]: tool } : {}),
      // RFC 9396 §9.1: what exactly this token may do, for the API to compare with what it receives.
      ...(approval
        ? {
            authorization_details: [
              {
                type: TOOL_CALL_DETAILS_TYPE,
                tool: approval.tool,
                arguments_digest: approval.argumentsDigest,
                approval_id: approval.id,
                approved_by: approval.sub,
                approved_at: Math.floor((approval.decidedAt ?? approval.createdAt) / 1000),
                ...amountOf(approval, deps.tools.get(approval.tool)?.amountArgument),
              },
            ],
          }
        : {}),
      sub: subject.sub,
      aud: api.audience,
      exp,
      client_id: subject.clientId,
      scope: granted.join(' '),
      act,
    });
    audit({
      outcome: 'success',
      actor,
      audience: api.audience,
      scope: granted.join(' '),
      ...(approval ? { approval_id: approval.id } : {}),
    });
    ctx.body = {
      access_token: accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: exp - now,
      scope: granted.join(' '),
      // RFC 9396 §7: the token response says which authorization details were granted.
      ...(approval
        ? {
            authorization_details: [
              {
                type: TOOL_CALL_DETAILS_TYPE,
                tool: approval.tool,
                arguments_digest: approval.argumentsDigest,
                approval_id: approval.id,
              },
            ],
          }
        : {}),
    };
  };
}
