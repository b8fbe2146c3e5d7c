/**
 * The admin API: JSON over HTTP at `<issuer>/admin/api/`, described by the OpenAPI document at
 * `<issuer>/admin/api/openapi.json` (openapi.ts). Every operation is the admin service's
 * (admin-service.ts); this file only maps HTTP to it: routes, the caller's token and scope
 * (admin-token.ts), JSON bodies, and errors as `{error, error_description, field}`.
 */
import type { Context, Middleware } from 'koa';
import type { Logger } from '../../shared/logging.ts';
import { AdminError, invalid } from './admin-error.ts';
import type { AdminService } from './admin-service.ts';
import { AdminAuthError, type AdminCaller, type AdminScope } from './admin-token.ts';
import { openApiDocument } from './openapi.ts';

export const ADMIN_API_PATH = '/admin/api';
const BODY_LIMIT_BYTES = 16 * 1024;

/** Extra operations other parts of the server contribute (keys, audit), routed like the rest. */
export interface AdminApiExtension {
  method: 'GET' | 'POST';
  path: RegExp;
  scope: AdminScope;
  handle(
    ctx: Context,
    caller: AdminCaller,
    match: RegExpExecArray,
    body: Record<string, unknown>,
  ): Promise<unknown>;
}

type Handler = (
  ctx: Context,
  caller: AdminCaller,
  params: string[],
  body: Record<string, unknown>,
) => Promise<unknown> | unknown;

interface Route {
  method: string;
  path: RegExp;
  scope: AdminScope;
  handler: Handler;
  status?: number;
}

async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  // An action with nothing to say (sign-out, disable) may come without a body.
  const length = ctx.get('content-length');
  if (!ctx.get('content-type') && (length === '' || length === '0') && !ctx.get('transfer-encoding'))
    return {};
  if (!ctx.is('application/json'))
    throw new AdminError(415, 'invalid_request', 'send a JSON body (application/json)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT_BYTES) throw new AdminError(413, 'invalid_request', 'the body is too large');
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw invalid('body', 'is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalid('body', 'must be a JSON object');
  return parsed as Record<string, unknown>;
}

const query = (ctx: Context, name: string): string | undefined => {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw invalid(name, 'may be given once');
  return value === undefined || value === '' ? undefined : value;
};

export function adminApiRoutes(deps: {
  service: AdminService;
  authenticate: (authorization: string | undefined, scope: AdminScope) => Promise<AdminCaller>;
  issuer: string;
  extensions?: AdminApiExtension[];
  logger: Logger;
}): Middleware {
  const { service } = deps;
  const segment = '([^/]+)';
  const r = (method: string, path: string, scope: AdminScope, handler: Handler, status?: number): Route => ({
    method,
    path: new RegExp(`^${path.replaceAll('{}', segment)}$`),
    scope,
    handler,
    ...(status ? { status } : {}),
  });
  const routes: Route[] = [
    r('GET', '/users', 'admin.read', async (ctx) => ({
      users: await service.listUsers(query(ctx, 'search')),
    })),
    r('POST', '/users', 'admin', (_ctx, caller, _p, body) => service.addUser(caller.actor, body), 201),
    r('GET', '/users/{}', 'admin.read', (_ctx, _c, [email]) => service.getUser(email!)),
    r('PATCH', '/users/{}', 'admin', (_ctx, caller, [email], body) =>
      service.updateUser(caller.actor, email!, body),
    ),
    r(
      'DELETE',
      '/users/{}',
      'admin',
      (_ctx, caller, [email]) => service.removeUser(caller.actor, email!),
      204,
    ),
    r('POST', '/users/{}/sign-out', 'admin', async (_ctx, caller, [email]) => ({
      sessions_ended: await service.signOutEverywhere(caller.actor, email!),
    })),
    r('GET', '/users/{}/grants', 'admin.read', async (_ctx, _c, [email]) => ({
      grants: await service.listGrants({ email: email! }),
    })),
    r('GET', '/domains', 'admin.read', async () => ({ domains: await service.listDomains() })),
    r('POST', '/domains', 'admin', (_ctx, caller, _p, body) => service.addDomain(caller.actor, body), 201),
    r(
      'DELETE',
      '/domains/{}',
      'admin',
      (_ctx, caller, [domain]) => service.removeDomain(caller.actor, domain!),
      204,
    ),
    r('GET', '/trusted-domains', 'admin.read', async () => ({
      trusted_domains: await service.listTrustedDomains(),
    })),
    r(
      'POST',
      '/trusted-domains',
      'admin',
      (_ctx, caller, _p, body) => service.addTrustedDomain(caller.actor, body),
      201,
    ),
    r(
      'DELETE',
      '/trusted-domains/{}',
      'admin',
      (_ctx, caller, [domain]) => service.removeTrustedDomain(caller.actor, domain!),
      204,
    ),
    r('GET', '/clients', 'admin.read', async () => ({ clients: await service.listClients() })),
    r(
      'POST',
      '/clients',
      'admin',
      (_ctx, caller, _p, body) => service.registerClient(caller.actor, body),
      201,
    ),
    r('GET', '/clients/{}', 'admin.read', (_ctx, _c, [id]) => service.getClient(id!)),
    r('POST', '/clients/{}/disable', 'admin', (_ctx, caller, [id]) =>
      service.setClientDisabled(caller.actor, id!, true),
    ),
    r('POST', '/clients/{}/enable', 'admin', (_ctx, caller, [id]) =>
      service.setClientDisabled(caller.actor, id!, false),
    ),
    r('DELETE', '/clients/{}', 'admin', (_ctx, caller, [id]) => service.deleteClient(caller.actor, id!), 204),
    r('GET', '/clients/{}/grants', 'admin.read', async (_ctx, _c, [id]) => ({
      grants: await service.listGrants({ clientId: id! }),
    })),
    r('GET', '/grants', 'admin.read', async (ctx) => {
      const user = query(ctx, 'user');
      const client = query(ctx, 'client');
      return {
        grants: await service.listGrants({
          ...(user !== undefined ? { email: user } : {}),
          ...(client !== undefined ? { clientId: client } : {}),
        }),
      };
    }),
    r('DELETE', '/grants/{}', 'admin', async (_ctx, caller, [id]) => service.revokeGrant(caller.actor, id!)),
    r('GET', '/approvals', 'admin.read', async (ctx) => ({
      approvals: await service.listApprovals(query(ctx, 'status')),
    })),
    r('POST', '/approvals/{}', 'admin', (_ctx, caller, [id], body) =>
      service.decideApproval(caller.actor, id!, body.decision),
    ),
  ];
  for (const extension of deps.extensions ?? []) {
    routes.push({
      method: extension.method,
      path: extension.path,
      scope: extension.scope,
      handler: (ctx, caller, _params, body) =>
        extension.handle(ctx, caller, extension.path.exec(ctx.path.slice(ADMIN_API_PATH.length))!, body),
    });
  }

  const send = (ctx: Context, status: number, body: unknown) => {
    ctx.status = status;
    ctx.set('cache-control', 'no-store');
    ctx.set('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    if (status !== 204) ctx.body = body;
  };

  return async (ctx, next) => {
    if (ctx.path !== ADMIN_API_PATH && !ctx.path.startsWith(`${ADMIN_API_PATH}/`)) return next();
    const path = ctx.path.slice(ADMIN_API_PATH.length);
    if (ctx.method === 'GET' && path === '/openapi.json') return send(ctx, 200, openApiDocument(deps.issuer));
    try {
      const matching = routes.filter((route) => route.path.test(path));
      if (matching.length === 0) throw new AdminError(404, 'not_found', 'no such admin API operation');
      const route = matching.find((candidate) => candidate.method === ctx.method);
      if (!route) {
        ctx.set('allow', [...new Set(matching.map((candidate) => candidate.method))].join(', '));
        throw new AdminError(405, 'invalid_request', `${ctx.method} is not allowed here`);
      }
      const caller = await deps.authenticate(ctx.get('authorization') || undefined, route.scope);
      let params: string[];
      try {
        params = route.path
          .exec(path)!
          .slice(1)
          .map((part) => decodeURIComponent(part));
      } catch {
        throw invalid('path', 'is not correctly percent-encoded');
      }
      const body = ctx.method === 'POST' || ctx.method === 'PATCH' ? await readJson(ctx) : {};
      const result = await route.handler(ctx, caller, params, body);
      if (ctx.body !== undefined && ctx.body !== null) return; // an extension that streamed its answer
      send(ctx, route.status ?? 200, result ?? {});
    } catch (error) {
      if (error instanceof AdminAuthError) ctx.set('www-authenticate', error.challenge);
      if (error instanceof AdminError) {
        return send(ctx, error.status, {
          error: error.code,
          error_description: error.message,
          ...(error.field ? { field: error.field } : {}),
        });
      }
      deps.logger.error('admin API operation failed', { error: (error as Error).message });
      send(ctx, 500, {
        error: 'server_error',
        error_description: 'the operation failed; see the server log',
      });
    }
  };
}
