/**
 * The OpenAPI 3.1 description of the admin API (admin-api.ts), served at
 * `<issuer>/admin/api/openapi.json`. Written out rather than generated: it is the contract
 * operators' scripts are written against, and the admin API test checks every path in it answers.
 */
const error = { $ref: '#/components/responses/Error' };
const denied = {
  401: { $ref: '#/components/responses/Unauthorized' },
  403: { $ref: '#/components/responses/Forbidden' },
};

function op(
  summary: string,
  scope: 'admin' | 'admin.read',
  responses: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    summary,
    security: [{ bearer: [scope] }],
    ...extra,
    responses: { ...responses, ...denied, 400: error, 404: error },
  };
}

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const ok = (schema: unknown, description = 'OK') => ({ 200: { description, ...json(schema) } });
const noContent = { 204: { description: 'Done' } };
const body = (schema: unknown) => ({ requestBody: { required: true, ...json(schema) } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const list = (key: string, item: string) => ({
  type: 'object',
  properties: { [key]: { type: 'array', items: ref(item) } },
});
const pathParam = (name: string, description: string) => ({
  parameters: [{ name, in: 'path', required: true, description, schema: { type: 'string' } }],
});
const queryParams = (...names: Array<[string, string]>) => ({
  parameters: names.map(([name, description]) => ({
    name,
    in: 'query',
    required: false,
    description,
    schema: { type: 'string' },
  })),
});

const claims = {
  type: 'object',
  description:
    'Claim names to values (string, number, boolean or list of strings); sub, email and email_verified are reserved.',
  additionalProperties: true,
};

/** What a rotation did to one ring (keys/key-manager.ts `RingRotation`). */
const ringRotation = {
  current: { type: 'string', description: 'The key that signs from now on' },
  retired: { type: 'string', description: 'The key that stopped signing' },
  retireAt: { type: 'string', format: 'date-time', description: 'When the retired key leaves the JWKS' },
  next: { type: 'string', description: 'The key published now, to sign at the next rotation' },
};

export function openApiDocument(issuer: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse admin API',
      version: '1',
      description:
        'Users, domains, clients, grants, the approval queue, keys and the audit trail. Authenticate with an access token for the audience `' +
        `${issuer}/admin/api` +
        '` from client credentials with a client of role `admin`. Scope `admin.read` may read, `admin` may change. Every change is audited with the caller.',
    },
    servers: [{ url: `${issuer}/admin/api` }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'oauth2',
          flows: {
            clientCredentials: {
              tokenUrl: `${issuer}/token`,
              scopes: { admin: 'Read and change', 'admin.read': 'Read only' },
            },
          },
        },
      },
      responses: {
        Error: { description: 'Refused', ...json(ref('Error')) },
        Unauthorized: {
          description: 'No token, or not a valid admin API token (RFC 6750 invalid_token)',
          ...json(ref('Error')),
        },
        Forbidden: {
          description: 'The token lacks the scope (RFC 6750 insufficient_scope)',
          ...json(ref('Error')),
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'error_description'],
          properties: {
            error: { type: 'string' },
            error_description: { type: 'string' },
            field: { type: 'string', description: 'The input at fault' },
          },
        },
        User: {
          type: 'object',
          properties: {
            email: { type: 'string' },
            sub: { type: 'string' },
            name: { type: 'string' },
            claims,
            status: { enum: ['active', 'suspended'] },
            source: { enum: ['configuration', 'administrator'] },
            administrator: { type: 'boolean' },
            created_at: { type: 'string', format: 'date-time' },
            updated_at: { type: 'string', format: 'date-time' },
            last_sign_in_at: { type: 'string', format: 'date-time' },
          },
        },
        NewUser: {
          type: 'object',
          required: ['email'],
          properties: {
            email: { type: 'string' },
            name: { type: 'string' },
            claims,
            invite: { type: 'boolean', description: 'Send an invitation email' },
          },
        },
        UserChange: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            claims,
            status: { enum: ['active', 'suspended'], description: 'suspended: every token stops at once' },
          },
        },
        Domain: {
          type: 'object',
          properties: {
            domain: { type: 'string' },
            claims,
            source: { type: 'string' },
            created_at: { type: 'string', format: 'date-time' },
          },
        },
        TrustedDomain: {
          type: 'object',
          properties: {
            domain: { type: 'string' },
            source: { type: 'string' },
            created_at: { type: 'string', format: 'date-time' },
          },
        },
        Client: {
          type: 'object',
          properties: {
            client_id: { type: 'string' },
            name: { type: 'string' },
            trust_class: { enum: ['pre-registered', 'cimd-trusted', 'cimd', 'dynamic'] },
            registration: {
              enum: ['configuration', 'administrator', 'metadata document', 'dynamic registration'],
            },
            role: { type: 'string' },
            redirect_hosts: { type: 'array', items: { type: 'string' } },
            scopes: { type: 'array', items: { type: 'string' } },
            created_at: { type: 'string', format: 'date-time' },
            last_used_at: { type: 'string', format: 'date-time' },
            disabled: { type: 'boolean' },
            essential: { type: 'boolean', description: 'Gatehouse needs it: it cannot be disabled' },
            approval: { enum: ['pending', 'approved', 'denied'] },
          },
        },
        NewClient: {
          type: 'object',
          required: ['name', 'role'],
          properties: {
            client_id: {
              type: 'string',
              description: '3 to 64 letters, digits, ".", "_" or "-"; generated when absent',
            },
            name: { type: 'string' },
            role: { enum: ['agent', 'workload'] },
            auth_method: {
              enum: ['none', 'client_secret_basic', 'private_key_jwt'],
              description: 'Default: none for an agent, client_secret_basic for a workload',
            },
            redirect_uris: {
              type: 'array',
              items: { type: 'string' },
              description: 'Agents: https, http on loopback, or a private-use scheme',
            },
            scopes: {
              type: 'array',
              items: { type: 'string' },
              description: 'MCP scopes it may hold; empty: all',
            },
            jwks: { type: 'object', description: 'Public keys, for private_key_jwt' },
          },
        },
        Grant: {
          type: 'object',
          properties: {
            grant_id: { type: 'string' },
            sub: { type: 'string' },
            email: { type: 'string' },
            client_id: { type: 'string' },
            client_name: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            consented_at: { type: 'string', format: 'date-time' },
            last_used_at: { type: 'string', format: 'date-time' },
          },
        },
        Approval: {
          type: 'object',
          properties: {
            clientId: { type: 'string' },
            clientClass: { enum: ['cimdTrusted', 'cimdOther', 'dynamic'] },
            name: { type: 'string' },
            redirectUris: { type: 'array', items: { type: 'string' } },
            scopes: { type: 'array', items: { type: 'string' } },
            metadata: {
              type: 'object',
              description: 'The CIMD document or DCR metadata the client presented',
            },
            status: { enum: ['pending', 'approved', 'denied'] },
            requestedBy: { type: 'string' },
            requestedAt: { type: 'integer', description: 'Milliseconds since the epoch' },
            decidedBy: { type: 'string' },
            decidedAt: { type: 'integer' },
          },
        },
        AuditRecord: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            at: { type: 'string', format: 'date-time' },
            event: { type: 'string' },
            outcome: { enum: ['success', 'failure', 'denied'] },
            sub: { type: 'string' },
            email: { type: 'string', description: 'The user, when the account is known' },
            client_id: { type: 'string' },
            tool: { type: 'string' },
            audience: { type: 'string' },
            scope: { type: 'string' },
            grant_id: { type: 'string' },
            request_id: { type: 'string' },
            fields: { type: 'object', description: 'Everything else the event said (redacted)' },
          },
        },
        ToolRuleMatch: {
          type: 'object',
          description:
            'Claim name → the values that admit a user (a list claim admits by any element); every claim named must admit',
          additionalProperties: {
            type: 'array',
            items: { type: ['string', 'number', 'boolean'] },
            minItems: 1,
          },
        },
        ToolRule: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            rule: {
              oneOf: [{ type: 'null' }, ref('ToolRuleMatch')],
              description: 'In force; null: every user',
            },
            configured_rule: { oneOf: [{ type: 'null' }, ref('ToolRuleMatch')] },
            source: { enum: ['configuration', 'administrator'] },
            updated_by: { type: 'string' },
            updated_at: { type: 'string', format: 'date-time' },
          },
        },
        Key: {
          type: 'object',
          properties: {
            kid: { type: 'string' },
            alg: { type: 'string' },
            use: { enum: ['access_token', 'id_token'], description: 'The ring: what the key signs' },
            state: { enum: ['next', 'current', 'retired'] },
            rotates: { type: 'boolean', description: 'Always true: both rings rotate' },
            created: { type: 'string', format: 'date-time' },
            activated: { type: 'string', format: 'date-time' },
            retired: { type: 'string', format: 'date-time' },
            retireAt: { type: 'string', format: 'date-time' },
            promotableFrom: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
    paths: {
      '/users': {
        get: op(
          'List and search approved users',
          'admin.read',
          ok(list('users', 'User')),
          queryParams(['search', 'Part of an email or name']),
        ),
        post: op(
          'Add (and optionally invite) a user',
          'admin',
          { 201: { description: 'Added', ...json(ref('User')) }, 409: error },
          body(ref('NewUser')),
        ),
      },
      '/users/{email}': {
        ...pathParam('email', 'The user\u2019s email address'),
        get: op('One user', 'admin.read', ok(ref('User'))),
        patch: op(
          'Edit claims or name, suspend or reinstate',
          'admin',
          ok(ref('User')),
          body(ref('UserChange')),
        ),
        delete: op('Remove a user: every token stops at once', 'admin', noContent),
      },
      '/users/{email}/sign-out': {
        ...pathParam('email', 'The user\u2019s email address'),
        post: op(
          'Sign the user out of every browser session',
          'admin',
          ok({ type: 'object', properties: { sessions_ended: { type: 'integer' } } }),
        ),
      },
      '/users/{email}/grants': {
        ...pathParam('email', 'The user\u2019s email address'),
        get: op('The agents the user allowed', 'admin.read', ok(list('grants', 'Grant'))),
      },
      '/domains': {
        get: op('Approved domains', 'admin.read', ok(list('domains', 'Domain'))),
        post: op(
          'Approve a domain',
          'admin',
          { 201: { description: 'Added', ...json(ref('Domain')) }, 409: error },
          body(ref('Domain')),
        ),
      },
      '/domains/{domain}': {
        ...pathParam('domain', 'The domain'),
        delete: op('Remove an approved domain', 'admin', noContent),
      },
      '/trusted-domains': {
        get: op('CIMD trusted domains', 'admin.read', ok(list('trusted_domains', 'TrustedDomain'))),
        post: op(
          'Trust a CIMD domain',
          'admin',
          { 201: { description: 'Added', ...json(ref('TrustedDomain')) } },
          body(ref('TrustedDomain')),
        ),
      },
      '/trusted-domains/{domain}': {
        ...pathParam('domain', 'The domain'),
        delete: op('Stop trusting a CIMD domain', 'admin', noContent),
      },
      '/clients': {
        get: op('Every client with its trust class', 'admin.read', ok(list('clients', 'Client'))),
      },
      '/clients/{client_id}': {
        ...pathParam('client_id', 'The client id, percent-encoded (CIMD client ids are URLs)'),
        get: op('One client', 'admin.read', ok(ref('Client'))),
        delete: op('Delete a client (DCR or CIMD): its tokens stop at once', 'admin', {
          ...noContent,
          409: error,
        }),
      },
      '/clients/{client_id}/disable': {
        ...pathParam('client_id', 'The client id, percent-encoded'),
        post: op('Disable a client: its tokens stop at once', 'admin', { ...ok(ref('Client')), 409: error }),
      },
      '/clients/{client_id}/enable': {
        ...pathParam('client_id', 'The client id, percent-encoded'),
        post: op('Enable a disabled client', 'admin', ok(ref('Client'))),
      },
      '/clients/{client_id}/grants': {
        ...pathParam('client_id', 'The client id, percent-encoded'),
        get: op('The users who allowed this client', 'admin.read', ok(list('grants', 'Grant'))),
      },
      '/grants': {
        get: op(
          'Grants, by user and client',
          'admin.read',
          ok(list('grants', 'Grant')),
          queryParams(['user', 'Email'], ['client', 'Client id']),
        ),
      },
      '/grants/{grant_id}': {
        ...pathParam('grant_id', 'The grant'),
        delete: op('Revoke a grant at once', 'admin', ok(ref('Grant'))),
      },
      '/audit': {
        get: op(
          'Search the audit trail, newest first (a page; next_cursor for the next)',
          'admin.read',
          ok({
            type: 'object',
            properties: {
              records: { type: 'array', items: ref('AuditRecord') },
              next_cursor: { type: 'string' },
            },
          }),
          queryParams(
            ['user', 'Email (or subject)'],
            ['client', 'Client id'],
            ['tool', 'MCP tool'],
            ['api', 'API name or audience'],
            ['event', 'Event name, e.g. token.exchange'],
            ['outcome', 'success, failure or denied'],
            ['request_id', 'One agent request'],
            ['grant_id', 'One grant: its consent and the tool calls resting on it'],
            ['since', 'ISO 8601 or epoch seconds, inclusive'],
            ['until', 'ISO 8601 or epoch seconds, inclusive'],
            ['limit', '1 to 1000, default 100'],
            ['cursor', 'next_cursor of the previous page'],
          ),
        ),
      },
      '/audit/export': {
        get: op(
          'Every matching record as JSON lines (application/x-ndjson), newest first',
          'admin.read',
          {
            200: {
              description: 'JSON lines',
              content: { 'application/x-ndjson': { schema: ref('AuditRecord') } },
            },
          },
          queryParams(['user', 'As for /audit'], ['since', 'As for /audit'], ['until', 'As for /audit']),
        ),
      },
      '/tools': {
        get: op(
          'Who may use each tool of the MCP server: the rule in force, the configured one, and who set it',
          'admin.read',
          ok(list('tools', 'ToolRule')),
        ),
      },
      '/tools/{tool}/rule': {
        ...pathParam('tool', 'The tool name (mcpServer.tools[].name)'),
        post: op(
          "Put an administrator's rule in place of the configured one (null: every user)",
          'admin',
          ok(ref('ToolRule')),
          body({
            type: 'object',
            required: ['rule'],
            properties: { rule: { oneOf: [{ type: 'null' }, ref('ToolRuleMatch')] } },
          }),
        ),
      },
      '/tools/{tool}/reset': {
        ...pathParam('tool', 'The tool name (mcpServer.tools[].name)'),
        post: op('Back to the configured rule', 'admin', ok(ref('ToolRule'))),
      },
      '/keys': {
        get: op(
          'The signing keys and their state (next, current, retired)',
          'admin.read',
          ok(list('keys', 'Key')),
        ),
      },
      '/keys/rotate': {
        post: op(
          'Rotate both rings: in each the next key signs and the current one retires (409 too_soon under the overlap rule)',
          'admin',
          {
            ...ok({
              type: 'object',
              description: 'The access-token ring at the top level, the ID-token ring in idToken',
              properties: {
                ...ringRotation,
                idToken: { type: 'object', properties: ringRotation },
              },
            }),
            409: error,
          },
        ),
      },
      '/approvals': {
        get: op(
          'The approval queue',
          'admin.read',
          ok(list('approvals', 'Approval')),
          queryParams(['status', 'pending, approved or denied']),
        ),
      },
      '/approvals/{client_id}': {
        ...pathParam('client_id', 'The client id, percent-encoded'),
        post: op(
          'Approve or deny a queued client',
          'admin',
          ok(ref('Approval')),
          body({
            type: 'object',
            required: ['decision'],
            properties: { decision: { enum: ['approved', 'denied'] } },
          }),
        ),
      },
    },
  };
}
