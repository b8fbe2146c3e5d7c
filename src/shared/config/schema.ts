/**
 * The one configuration file of Gatehouse, as a schema.
 *
 * Every key has a safe default, so an empty file (or none) runs the reference deployment on one
 * machine. Unknown keys are errors: a typo must not silently fall back to a default.
 * docs/configuration.md describes each key; keep the two in step.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

const seconds = z.number().int().positive();
const port = z.number().int().min(0).max(65535);
const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
  .refine((value) => !value.includes('#'), 'must not contain a fragment');
const scopeName = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'is not a valid OAuth scope token (RFC 6749 §3.3)');
const claimValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);
const claims = z.record(z.string(), claimValue).default({});
/**
 * Who may ever use a tool, on the user's claims: claim name → the values that admit (a user whose
 * claim is a list is admitted by any element). Every claim named must admit.
 */
export const toolRuleSchema = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/, 'is not a claim name'),
    z
      .array(z.union([z.string().min(1).max(200), z.number(), z.boolean()]))
      .min(1)
      .max(50),
  )
  .refine((rule) => Object.keys(rule).length >= 1 && Object.keys(rule).length <= 10, 'names 1 to 10 claims');

/** A secret given literally (32 characters or more), from an environment variable, or from a file. */
const secretReference = z
  .string()
  .refine(
    (value) => value.startsWith('env:') || value.startsWith('file:') || value.length >= 32,
    'must be "env:NAME", "file:PATH" or a literal of at least 32 characters',
  );

const listen = z.strictObject({
  host: z.string().default('127.0.0.1'),
  /** 0 picks a free port; undefined means the port of the public URL. */
  port: port.optional(),
  /**
   * Serve HTTPS: PEM files of the certificate chain and its key, relative to the configuration
   * file's folder; reloaded when they change (src/shared/tls-listener.ts).
   */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
});

const mcpResource = z.strictObject({
  /** Canonical URI of the MCP server (RFC 8707 resource, RFC 9728 `resource`). */
  uri: httpUrl.default('http://localhost:8000/mcp'),
  name: z.string().min(1).default('Gatehouse MCP server'),
  accessTokenTtlSeconds: seconds.max(86400).default(900),
  scopes: z.record(scopeName, z.string().min(1)).default({
    'stocks:read': 'See stock prices in your region',
    'stocks:trade': 'Place stock orders on your behalf',
    'customers:read': 'See your customer record',
  }),
  /** Scopes an agent gets when it asks for none (the 401 challenge's `scope`). */
  baseScopes: z.array(scopeName).default(['stocks:read', 'customers:read']),
});

const upstreamApi = z.strictObject({
  name: z.string().min(1),
  /** The `aud` of tokens for this API; also accepted as an RFC 8707 resource or RFC 8693 audience. */
  audience: httpUrl,
  accessTokenTtlSeconds: seconds.max(3600).default(300),
  scopes: z.record(scopeName, z.string().min(1)),
});

const exchangeTarget = z.strictObject({
  audience: httpUrl,
  /** MCP scope → the API scopes it maps to. An MCP scope not listed here maps to nothing. */
  scopeMap: z.record(scopeName, z.array(scopeName)),
});

const exchangePolicy = z.strictObject({
  /** The client allowed to exchange (the MCP server's client). */
  clientId: z.string().min(1),
  targets: z.array(exchangeTarget).min(1),
});

const preRegisteredClient = z
  .strictObject({
    clientId: z.string().min(1).max(200),
    name: z.string().min(1),
    /**
     * What the client is for: `gateway` may introspect; `workload` gets client credentials for the MCP
     * server; `admin` gets client credentials for the admin API only (scopes `admin`, `admin.read`).
     */
    role: z.enum(['gateway', 'mcp-server', 'workload', 'agent', 'admin']),
    authMethod: z.enum(['client_secret_basic', 'private_key_jwt', 'none']),
    secret: secretReference.optional(),
    /** Public keys for private_key_jwt: a JWKS file (generated with a key pair when missing and `generateKeys`). */
    jwksFile: z.string().optional(),
    generateKeys: z.boolean().default(false),
    redirectUris: z.array(z.string()).default([]),
    scopes: z.array(scopeName).default([]),
  })
  .superRefine((client, ctx) => {
    if (client.authMethod === 'client_secret_basic' && !client.secret) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'is required for client_secret_basic' });
    }
    if (client.authMethod === 'private_key_jwt' && !client.jwksFile) {
      ctx.addIssue({ code: 'custom', path: ['jwksFile'], message: 'is required for private_key_jwt' });
    }
  });

const rateLimit = z.strictObject({ max: z.number().int().positive(), windowSeconds: seconds });

type PreRegisteredClient = z.output<typeof preRegisteredClient>;

/** The gateway's and the MCP server's own clients: Gatehouse needs them whatever else is listed. */
const INTERNAL_CLIENTS: readonly PreRegisteredClient[] = [
  {
    clientId: 'gatehouse-gateway',
    name: 'Gatehouse gateway',
    role: 'gateway',
    authMethod: 'client_secret_basic',
    secret: 'file:secrets/gatehouse-gateway.secret',
    generateKeys: false,
    redirectUris: [],
    scopes: [],
  },
  {
    clientId: 'gatehouse-mcp-server',
    name: 'Gatehouse MCP server',
    role: 'mcp-server',
    authMethod: 'client_secret_basic',
    secret: 'file:secrets/gatehouse-mcp-server.secret',
    generateKeys: false,
    redirectUris: [],
    scopes: [],
  },
];

/** The demonstration workload of the default configuration (client credentials with a key pair). */
const EXAMPLE_WORKLOAD_CLIENT: PreRegisteredClient = {
  clientId: 'example-workload',
  name: 'Example workload agent',
  role: 'workload',
  authMethod: 'private_key_jwt',
  jwksFile: 'secrets/example-workload.jwks.json',
  generateKeys: true,
  redirectUris: [],
  scopes: ['stocks:read'],
};

/** Scopes of the admin API (`<issuer>/admin/api`): `admin` may change, `admin.read` only look. */
export const ADMIN_SCOPES = ['admin', 'admin.read'] as const;

/** The operators' scripts' client of the default configuration (client credentials, admin API). */
const EXAMPLE_ADMIN_CLIENT: PreRegisteredClient = {
  clientId: 'gatehouse-admin',
  name: 'Gatehouse admin scripts',
  role: 'admin',
  authMethod: 'client_secret_basic',
  secret: 'file:secrets/gatehouse-admin.secret',
  generateKeys: false,
  redirectUris: [],
  scopes: ['admin'],
};

/** What each client class may do at its first authorization (the approval queue, docs/operations.md). */
const approvalPolicy = z.enum(['allow', 'approval', 'deny']);

/**
 * `clients` as given, plus each internal client whose role no listed client has (and whose id none
 * uses): a file that lists a partner's client only does not lose the gateway's and the MCP server's,
 * which it never meant to touch. One that lists a client of role `gateway` or `mcp-server` of its
 * own has chosen it (and names it in `gateway.client` or `tokenExchange`).
 */
function withInternalClients(clients: PreRegisteredClient[]): PreRegisteredClient[] {
  const missing = INTERNAL_CLIENTS.filter(
    (internal) =>
      !clients.some((client) => client.role === internal.role || client.clientId === internal.clientId),
  );
  return [...missing.map((client) => ({ ...client })), ...clients];
}

const authorizationServerBase = z.strictObject({
  issuer: httpUrl.default('http://localhost:9000'),
  listen: listen.default({ host: '127.0.0.1' }),
  /**
   * Behind a reverse proxy: take the client address from the last X-Forwarded-For entry (rate limits,
   * audit). URLs never come from the request, proxy or not: they derive from `issuer`.
   */
  trustProxy: z.boolean().default(false),
  resources: z
    .strictObject({
      mcp: mcpResource.prefault({}),
      apis: z.array(upstreamApi).default([
        {
          name: 'Stocks API',
          audience: 'http://localhost:8000/api/stocks',
          accessTokenTtlSeconds: 300,
          scopes: { 'stocks.read': 'Read stocks', 'stocks.trade': 'Place orders' },
        },
        {
          name: 'Customers API',
          audience: 'http://localhost:8000/api/customers',
          accessTokenTtlSeconds: 300,
          scopes: { 'customers.read': 'Read customer records' },
        },
      ]),
    })
    .prefault({}),
  tokenExchange: z.array(exchangePolicy).default([
    {
      clientId: 'gatehouse-mcp-server',
      targets: [
        {
          audience: 'http://localhost:8000/api/stocks',
          scopeMap: { 'stocks:read': ['stocks.read'], 'stocks:trade': ['stocks.trade'] },
        },
        {
          audience: 'http://localhost:8000/api/customers',
          scopeMap: { 'customers:read': ['customers.read'] },
        },
      ],
    },
  ]),
  // A list of one's own clients (partners, workloads) keeps the internal ones (withInternalClients).
  clients: z
    .array(preRegisteredClient)
    .default([...INTERNAL_CLIENTS, EXAMPLE_WORKLOAD_CLIENT, EXAMPLE_ADMIN_CLIENT])
    .transform(withInternalClients),
  clientIdMetadataDocuments: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Hosts (and their subdomains) whose documents the consent page marks verified. */
      trustedDomains: z.array(z.string()).default([]),
      deniedDomains: z.array(z.string()).default([]),
      /** Documents from other hosts: allowed but marked unverified, or denied. */
      unlisted: z.enum(['allow', 'deny']).default('allow'),
      maxBytes: z.number().int().min(512).max(65536).default(5120),
      timeoutMs: z.number().int().min(100).max(10000).default(3000),
      cacheMaxEntries: z.number().int().min(10).default(1000),
      failureBackoffSeconds: seconds.default(60),
      /** DEVELOPMENT ONLY: accept http://localhost / 127.0.0.1 documents. Logs a warning when on. */
      allowLoopbackHttp: z.boolean().default(false),
    })
    .prefault({}),
  dynamicRegistration: z
    .strictObject({
      enabled: z.boolean().default(true),
      maxAccessTokenTtlSeconds: seconds.default(900),
      /** Gone: who gets refresh tokens is refreshTokens.clients. Refused with a pointer there. */
      allowRefreshTokens: z
        .unknown()
        .refine(() => false, {
          message:
            'moved: say which clients get refresh tokens in authorizationServer.refreshTokens.clients (dynamic, cimd, publicClients)',
        })
        .optional(),
      rateLimit: rateLimit.default({ max: 20, windowSeconds: 3600 }),
      removeUnusedAfterSeconds: seconds.default(30 * 86400),
    })
    .prefault({}),
  refreshTokens: z
    .strictObject({
      /** Issue refresh tokens at all, to the clients `clients` names that have the refresh_token grant. */
      enabled: z.boolean().default(true),
      /**
       * Who may get them, by how the client is known: pre-registered, self-registered (DCR) or by a
       * metadata document (CIMD). Only clients that authenticate at the token endpoint, unless
       * `publicClients`: a public client's refresh token is protected by rotation alone.
       */
      clients: z
        .strictObject({
          preRegistered: z.boolean().default(true),
          dynamic: z.boolean().default(true),
          cimd: z.boolean().default(false),
          publicClients: z.boolean().default(false),
        })
        .prefault({}),
      /** From the sign-in, across every rotation: after this the user signs in again. */
      absoluteLifetimeSeconds: seconds.default(8 * 3600),
      /** One refresh token's lifetime, if unused (never past the absolute lifetime). */
      ttlSeconds: seconds.default(14 * 86400),
      /** Window in which a just-rotated refresh token still works, for concurrent refreshes. */
      reuseGraceSeconds: z.number().int().min(0).max(60).default(10),
    })
    .prefault({}),
  /**
   * Who may use the admin console (`<issuer>/admin`): they sign in with the same one-time code.
   * Only this list makes an administrator; nothing in the console or the admin API can change it.
   */
  administrators: z.array(z.email()).default(['admin@example.com']),
  /**
   * Per class of client not registered by the administrators: `allow` (the first authorization goes
   * ahead), `approval` (the user is told to wait and the client is queued for an administrator) or
   * `deny`. Pre-registered clients are always allowed.
   */
  clientApproval: z
    .strictObject({
      cimdTrusted: approvalPolicy.default('allow'),
      cimdOther: approvalPolicy.default('allow'),
      dynamic: approvalPolicy.default('allow'),
    })
    .prefault({}),
  users: z
    .strictObject({
      approved: z.array(z.strictObject({ email: z.email(), name: z.string().optional(), claims })).default([
        { email: 'alice@example.com', name: 'Alice Example', claims: { region: 'eu', role: 'trader' } },
        { email: 'bob@example.com', name: 'Bob Example', claims: { region: 'us' } },
      ]),
      domains: z
        .array(
          z.strictObject({
            domain: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, 'is not a domain name'),
            claims,
          }),
        )
        .default([]),
    })
    .prefault({}),
  login: z
    .strictObject({
      codeTtlSeconds: seconds.max(900).default(300),
      maxAttempts: z.number().int().min(1).max(10).default(5),
      perEmail: rateLimit.default({ max: 5, windowSeconds: 900 }),
      perAddress: rateLimit.default({ max: 20, windowSeconds: 900 }),
    })
    .prefault({}),
  consent: z
    .strictObject({
      /** How long a user's consent for a client and resource is remembered. */
      rememberSeconds: seconds.default(30 * 86400),
    })
    .prefault({}),
  /**
   * Approvals of single tool calls (`mcpServer.tools[].approval: required`): how long a person has to
   * decide, and how long an approval then waits for the agent's retry.
   */
  operationApprovals: z
    .strictObject({
      ttlSeconds: seconds.min(5).max(3600).default(300),
    })
    .prefault({}),
  /** The audit trail kept in the database (docs/operations.md, "Audit trail"). */
  audit: z
    .strictObject({
      /** Days an audit record is kept; 0 keeps every record forever. */
      retentionDays: z.number().int().min(0).max(36_500).default(90),
    })
    .prefault({}),
  /**
   * What the pages and mails people see are branded with (the organization's, not Gatehouse's: it
   * appears as "Powered by Gatehouse" only).
   */
  branding: z
    .strictObject({
      organizationName: z
        .string()
        .min(1)
        .max(100)
        .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters (line breaks, tabs)')
        .default('Gatehouse'),
      /** Shown on every page: an email address or an https URL where people get help. */
      supportContact: z
        .string()
        .max(200)
        .refine(
          (value) => z.email().safeParse(value).success || /^https:\/\/[^\s]+$/.test(value),
          'must be an email address or an https:// URL',
        )
        .optional(),
      /** A PNG, JPEG or WebP logo (at most 256 KiB), relative to the configuration file's folder. */
      logoFile: z.string().min(1).optional(),
    })
    .prefault({}),
  mail: z
    .strictObject({
      from: z.string().default('Gatehouse <no-reply@localhost>'),
      smtp: z
        .strictObject({
          host: z.string().min(1),
          port: port.default(587),
          secure: z.boolean().default(false),
          user: z.string().optional(),
          /** `env:NAME` (recommended), `file:PATH`, or the password itself. */
          password: z.string().min(1).optional(),
        })
        .optional(),
    })
    .prefault({}),
  /**
   * POST /token limits. Authenticated clients count per client_id, by role (`service`: the gateway
   * and MCP server; `workload`; `agent`: other confidential clients); public clients and failed
   * client authentications count per source address.
   */
  tokenEndpointRateLimit: z
    .strictObject({
      perAddress: rateLimit.default({ max: 600, windowSeconds: 60 }),
      perClient: z
        .strictObject({
          service: rateLimit.default({ max: 60_000, windowSeconds: 60 }),
          workload: rateLimit.default({ max: 600, windowSeconds: 60 }),
          agent: rateLimit.default({ max: 600, windowSeconds: 60 }),
        })
        .prefault({}),
    })
    .prefault({}),
  /**
   * DPoP (RFC 9449) per client class: `optional` binds a token when the request carries a proof,
   * `required` refuses token requests without one (the client's `dpop_bound_access_tokens`).
   * `preRegistered` covers clients of role agent and workload (internal services never hold tokens).
   */
  dpop: z
    .strictObject({
      preRegistered: z.enum(['optional', 'required']).default('optional'),
      metadataDocument: z.enum(['optional', 'required']).default('optional'),
      dynamic: z.enum(['optional', 'required']).default('optional'),
      /** Proofs at the token endpoint must carry a server nonce (RFC 9449 §8). */
      requireNonce: z.boolean().default(false),
    })
    .prefault({}),
  clientAssertions: z
    .strictObject({
      /** Longest validity of a private_key_jwt assertion (RFC 7523 §3): its exp - iat, and exp - now. */
      maxLifetimeSeconds: seconds.max(3600).default(300),
    })
    .prefault({}),
  sessionTtlSeconds: seconds.default(8 * 3600),
  /**
   * The signing keys, both rings (keys/key-ring.ts): rotated every `rotateEveryDays` (false: only
   * when asked), and a new key signs only once it has been published `publishBeforeUseSeconds`.
   */
  keys: z
    .strictObject({
      rotateEveryDays: z.union([z.number().int().min(1).max(3650), z.literal(false)]).default(90),
      /** At least the longest time any verifier keeps a fetched JWKS without refetching. */
      publishBeforeUseSeconds: seconds.max(30 * 86400).default(3600),
    })
    .prefault({}),
});

/**
 * DPoP proof algorithms (RFC 9449 §5.1) the authorization server binds tokens with, and the gateway
 * accepts by default: asymmetric only. The gateway's `dpop.algorithms` may narrow them.
 */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'] as const;
export const authorizationServerSchema = authorizationServerBase.superRefine(checkCrossReferences);

const trimSlash = (uri: string) => (uri.endsWith('/') ? uri.slice(0, -1) : uri);

/** Rules that span keys: every name a setting refers to must exist, so mistakes surface at start. */
function checkCrossReferences(as: z.infer<typeof authorizationServerBase>, ctx: z.RefinementCtx): void {
  const mcpScopes = new Set(Object.keys(as.resources.mcp.scopes));
  as.resources.mcp.baseScopes.forEach((scope, i) => {
    if (!mcpScopes.has(scope)) {
      ctx.addIssue({
        code: 'custom',
        path: ['resources', 'mcp', 'baseScopes', i],
        message: `"${scope}" is not one of resources.mcp.scopes`,
      });
    }
  });
  const apis = new Map(as.resources.apis.map((api) => [trimSlash(api.audience), api]));
  if (apis.has(trimSlash(as.resources.mcp.uri))) {
    ctx.addIssue({
      code: 'custom',
      path: ['resources', 'apis'],
      message: 'an API audience must differ from the MCP server URI',
    });
  }
  const clients = new Map(as.clients.map((client) => [client.clientId, client]));
  if (clients.size !== as.clients.length) {
    ctx.addIssue({ code: 'custom', path: ['clients'], message: 'clientId values must be unique' });
  }
  as.tokenExchange.forEach((policy, p) => {
    if (clients.get(policy.clientId)?.role !== 'mcp-server') {
      ctx.addIssue({
        code: 'custom',
        path: ['tokenExchange', p, 'clientId'],
        message: `"${policy.clientId}" is not a pre-registered client with role mcp-server`,
      });
    }
    policy.targets.forEach((target, t) => {
      const api = apis.get(trimSlash(target.audience));
      if (!api) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokenExchange', p, 'targets', t, 'audience'],
          message: `"${target.audience}" is not the audience of any resources.apis entry`,
        });
        return;
      }
      for (const [mcpScope, apiScopes] of Object.entries(target.scopeMap)) {
        if (!mcpScopes.has(mcpScope)) {
          ctx.addIssue({
            code: 'custom',
            path: ['tokenExchange', p, 'targets', t, 'scopeMap', mcpScope],
            message: `"${mcpScope}" is not one of resources.mcp.scopes`,
          });
        }
        for (const apiScope of apiScopes) {
          if (!(apiScope in api.scopes)) {
            ctx.addIssue({
              code: 'custom',
              path: ['tokenExchange', p, 'targets', t, 'scopeMap', mcpScope],
              message: `"${apiScope}" is not a scope of ${api.name}`,
            });
          }
        }
      }
    });
  });
  as.clients.forEach((client, i) => {
    client.scopes.forEach((scope) => {
      if (client.role === 'admin') {
        if (!(ADMIN_SCOPES as readonly string[]).includes(scope))
          ctx.addIssue({
            code: 'custom',
            path: ['clients', i, 'scopes'],
            message: `"${scope}" is not an admin API scope (${ADMIN_SCOPES.join(', ')})`,
          });
        return;
      }
      if (!mcpScopes.has(scope)) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', i, 'scopes'],
          message: `"${scope}" is not one of resources.mcp.scopes`,
        });
      }
    });
  });
}

/** A client of the authorization server, seen from the component that uses it. */
const clientCredentials = z.strictObject({
  clientId: z.string().min(1),
  secret: secretReference,
});

const gatewayRoute = z.strictObject({
  /** Path prefix on the gateway, e.g. `/api/stocks`. */
  prefix: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a path starting with /'),
  /** Where requests go; the prefix is replaced by this URL's path. */
  upstream: httpUrl,
});

export const gatewaySchema = z.strictObject({
  /** The public URL agents use; the MCP server's canonical URI lives under it. */
  publicUrl: httpUrl.default('http://localhost:8000'),
  listen: listen.default({ host: '127.0.0.1' }),
  /** Where the authorization server is reached for introspection (defaults to its issuer). */
  authorizationServerUrl: httpUrl.optional(),
  client: clientCredentials.default({
    clientId: 'gatehouse-gateway',
    secret: 'file:secrets/gatehouse-gateway.secret',
  }),
  /** The MCP server behind `/mcp` and its Protected Resource Metadata. */
  mcpServerUrl: httpUrl.default('http://127.0.0.1:8001'),
  routes: z.array(gatewayRoute).default([
    { prefix: '/api/stocks', upstream: 'http://127.0.0.1:8002/stocks' },
    { prefix: '/api/customers', upstream: 'http://127.0.0.1:8002/customers' },
  ]),
  introspectionCache: z
    .strictObject({
      /**
       * Longest time a token's introspection result is reused. A revoked token keeps working at most
       * this long: the cache trades revocation latency for speed (docs/security.md).
       */
      maxSeconds: seconds.max(3600).default(30),
      maxEntries: z.number().int().min(1).default(10_000),
      /** Bound on remembered inactive answers, kept apart so bogus tokens cannot evict valid ones. */
      inactiveMaxEntries: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  /**
   * Bounds on introspections in flight (cache misses): per client address and overall, each with a
   * bounded queue. Over a full queue: 429 (the address) or 503 (overall), with Retry-After.
   */
  introspectionLimits: z
    .strictObject({
      maxConcurrent: z.number().int().min(1).default(64),
      maxQueued: z.number().int().min(0).default(5000),
      perAddressConcurrent: z.number().int().min(1).default(8),
      perAddressQueued: z.number().int().min(0).default(1000),
    })
    .prefault({}),
  introspectionTimeoutMs: z.number().int().min(100).max(30_000).default(3000),
  /** DPoP proofs (RFC 9449 §7.1) for tokens bound to a key; the gateway verifies them. */
  dpop: z
    .strictObject({
      algorithms: z
        .array(
          z.enum([
            'ES256',
            'ES384',
            'ES512',
            'PS256',
            'PS384',
            'PS512',
            'RS256',
            'RS384',
            'RS512',
            'EdDSA',
            'Ed25519',
          ]),
        )
        .min(1)
        .default([...DPOP_ALGORITHMS]),
      /** How far a proof's `iat` may be from the gateway's clock, either way. */
      proofMaxAgeSeconds: seconds.max(600).default(60),
      /** Proofs must carry a nonce the gateway handed out in DPoP-Nonce (RFC 9449 §9). */
      requireNonce: z.boolean().default(false),
      nonceLifetimeSeconds: seconds.max(3600).default(300),
      /** Proof `jti`s remembered (per gateway process) to refuse replays within the window. */
      replayCacheMaxEntries: z.number().int().min(1000).default(100_000),
    })
    .prefault({}),
  upstreamTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(100 * 1024 * 1024)
    .default(1024 * 1024),
  trustProxy: z.boolean().default(false),
});

const toolSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, "_", "-" or "."'),
  title: z.string().min(1).optional(),
  description: z.string().min(1),
  /** JSON Schema (an object schema) for the tool's arguments. */
  inputSchema: z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} }),
  /** Name of an entry in mcpServer.apis. */
  api: z.string().min(1),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
  /**
   * Path under the API's base URL; `{name}` is replaced by the URL-encoded argument. Arguments not
   * used in the path are sent as the JSON body (POST/PUT/PATCH) or the query string.
   */
  path: z.string().regex(/^\//, 'must start with /'),
  /** MCP scopes the token must carry to call this tool; checked before any upstream call. */
  scopes: z.array(scopeName).min(1),
  /**
   * The API scopes the call needs: the token exchange asks for exactly these (RFC 8693 `scope`).
   * Default: what `scopes` map to at the tool's API under `authorizationServer.tokenExchange`.
   */
  apiScopes: z.array(scopeName).min(1).optional(),
  /** Who may ever use the tool (a rule on the user's claims); absent: every user its scopes allow. */
  allow: toolRuleSchema.optional(),
  /**
   * `required`: each call runs only once the signed-in user approved that exact call (tool and
   * arguments) on the authorization server's approval page. `none`: the scopes are enough.
   */
  approval: z.enum(['required', 'none']).default('none'),
  /**
   * The argument that is the operation's amount (a number), shown apart on the approval page and
   * named in the exchanged token's `authorization_details` (RFC 9396), for the API to check.
   */
  amountArgument: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'is not an argument name')
    .optional(),
  annotations: z
    .strictObject({
      readOnlyHint: z.boolean().optional(),
      destructiveHint: z.boolean().optional(),
      idempotentHint: z.boolean().optional(),
      openWorldHint: z.boolean().optional(),
    })
    .default({}),
});

const DEFAULT_TOOLS: z.input<typeof toolSchema>[] = [
  {
    name: 'list_stocks',
    title: 'List stocks',
    description: 'Lists the stocks you can see, with their current prices (filtered by your region).',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
    api: 'stocks',
    method: 'GET',
    path: '/',
    scopes: ['stocks:read'],
    annotations: { readOnlyHint: true },
  },
  {
    name: 'get_stock',
    title: 'Get a stock',
    description: 'Gets one stock by its ticker symbol.',
    inputSchema: {
      type: 'object',
      properties: {
        symbol: { type: 'string', description: 'Ticker symbol, e.g. ACME', pattern: '^[A-Z]{1,8}$' },
      },
      required: ['symbol'],
      additionalProperties: false,
    },
    api: 'stocks',
    method: 'GET',
    path: '/{symbol}',
    scopes: ['stocks:read'],
    annotations: { readOnlyHint: true },
  },
  {
    name: 'place_order',
    title: 'Place a stock order',
    description: 'Places an order to buy or sell a stock. Needs the stocks:trade permission.',
    inputSchema: {
      type: 'object',
      properties: {
        symbol: { type: 'string', pattern: '^[A-Z]{1,8}$' },
        side: { type: 'string', enum: ['buy', 'sell'] },
        quantity: { type: 'integer', minimum: 1, maximum: 10000 },
      },
      required: ['symbol', 'side', 'quantity'],
      additionalProperties: false,
    },
    api: 'stocks',
    method: 'POST',
    path: '/orders',
    scopes: ['stocks:trade'],
    allow: { role: ['trader'] },
    amountArgument: 'quantity',
    annotations: { readOnlyHint: false, destructiveHint: true },
  },
  {
    name: 'get_my_customer_record',
    title: 'Get my customer record',
    description: 'Gets the customer record of the signed-in user.',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
    api: 'customers',
    method: 'GET',
    path: '/me',
    scopes: ['customers:read'],
    annotations: { readOnlyHint: true },
  },
];

export const mcpServerSchema = z.strictObject({
  listen: listen.default({ host: '127.0.0.1', port: 8001 }),
  /** Canonical URI (defaults to authorizationServer.resources.mcp.uri). */
  resource: httpUrl.optional(),
  /** Where the authorization server is reached for JWKS and token exchange (defaults to its issuer). */
  authorizationServerUrl: httpUrl.optional(),
  client: clientCredentials.default({
    clientId: 'gatehouse-mcp-server',
    secret: 'file:secrets/gatehouse-mcp-server.secret',
  }),
  /** Browser origins allowed to call /mcp (requests without Origin are always allowed). */
  allowedOrigins: z.array(z.string()).default(['http://localhost', 'http://127.0.0.1']),
  apis: z
    .record(
      z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be a lowercase name'),
      z.strictObject({
        /** Where the MCP server calls the API (directly, not through the gateway). */
        baseUrl: httpUrl,
        /** The API's audience for token exchange. */
        audience: httpUrl,
      }),
    )
    .default({
      stocks: { baseUrl: 'http://127.0.0.1:8002/stocks', audience: 'http://localhost:8000/api/stocks' },
      customers: {
        baseUrl: 'http://127.0.0.1:8002/customers',
        audience: 'http://localhost:8000/api/customers',
      },
    }),
  tools: z.array(toolSchema).prefault(DEFAULT_TOOLS),
  upstreamTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  exchangeCache: z
    .strictObject({
      maxEntries: z.number().int().min(1).default(10_000),
      /** Exchanged tokens are dropped this long before they expire. */
      refreshBeforeSeconds: z.number().int().min(0).max(300).default(30),
    })
    .prefault({}),
  jwksCacheSeconds: seconds.default(600),
});

export const apisSchema = z.strictObject({
  listen: listen.default({ host: '127.0.0.1', port: 8002 }),
  /** Issuer of the tokens the APIs accept (defaults to authorizationServer.issuer). */
  issuer: httpUrl.optional(),
  /** Where the JWKS is fetched (defaults to `<issuer>/jwks`). */
  jwksUri: httpUrl.optional(),
  clockSkewSeconds: z.number().int().min(0).max(30).default(30),
  /** How long fetched signing keys are used before they are fetched again (as mcpServer's). */
  jwksCacheSeconds: seconds.default(600),
  stocks: z
    .strictObject({
      audience: httpUrl.default('http://localhost:8000/api/stocks'),
      readScope: scopeName.default('stocks.read'),
      tradeScope: scopeName.default('stocks.trade'),
      /** Orders need at least this client_assurance_level (4 pre-registered … 1 DCR). */
      minAssuranceLevelForOrders: z.number().int().min(0).max(4).default(1),
    })
    .prefault({}),
  customers: z
    .strictObject({
      audience: httpUrl.default('http://localhost:8000/api/customers'),
      readScope: scopeName.default('customers.read'),
    })
    .prefault({}),
});

/**
 * The HTTP listener every component runs on (src/shared/http-server.ts): how long a client may take
 * to send a request, how many connections it may hold, and how long a shutdown waits for requests
 * in flight.
 */
export const httpSchema = z
  .strictObject({
    /** The request line and headers must arrive within this time (slowloris), else 408 and close. */
    headersTimeoutSeconds: seconds.max(300).default(10),
    /** The whole request, body included, must arrive within this time. */
    requestTimeoutSeconds: seconds.max(3600).default(30),
    /** An idle keep-alive connection is closed after this time. */
    keepAliveTimeoutSeconds: seconds.max(600).default(5),
    /** On SIGTERM/SIGINT, requests in flight get this long to finish before their connections are cut. */
    drainTimeoutSeconds: seconds.max(600).default(10),
    /** Connections one listener holds at most (and never more than half the process's open-file limit). */
    maxConnections: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Connections one client address (an IPv6 /64) holds at most on one listener. */
    maxConnectionsPerAddress: z.number().int().min(1).max(1_000_000).default(1000),
  })
  .refine((http) => http.headersTimeoutSeconds <= http.requestTimeoutSeconds, {
    path: ['headersTimeoutSeconds'],
    message: 'must not be longer than requestTimeoutSeconds (the headers are part of the request)',
  });

/** An address range in CIDR notation (`127.0.0.0/8`, `::1/128`, `10.0.0.0/8`). */
const cidr = z.string().refine((value) => {
  try {
    ipaddr.parseCIDR(value);
    return true;
  } catch {
    return false;
  }
}, 'is not an address range in CIDR notation, e.g. "10.0.0.0/8" or "::1/128"');

/**
 * Who may read `GET /metrics` on every component (src/shared/metrics.ts): callers from these
 * addresses that did not come through a proxy, or callers with the bearer token.
 */
export const metricsSchema = z.strictObject({
  allowFrom: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
  /** A bearer token for scrapers elsewhere (`env:NAME`, `file:PATH` or a literal of 32+ characters). */
  token: secretReference.optional(),
});

/**
 * OpenTelemetry traces (src/shared/tracing.ts): off unless `otlpEndpoint` is set. Each component
 * exports its spans over OTLP/HTTP (JSON) to `<otlpEndpoint>/v1/traces`, as the standard
 * OTEL_EXPORTER_OTLP_ENDPOINT would; the collector's credentials, when it needs any, come from the
 * standard OTEL_EXPORTER_OTLP_HEADERS, so no secret sits in this file.
 */
export const tracingSchema = z.strictObject({
  /** The collector's OTLP/HTTP base URL, e.g. `http://localhost:4318`. Absent: no tracing at all. */
  otlpEndpoint: httpUrl.optional(),
  /** Each component's `service.name` is this plus its name: `gatehouse-gateway`, `gatehouse-mcp-server`, ... */
  serviceNamePrefix: z
    .string()
    .regex(/^[A-Za-z0-9._-]{0,64}$/, 'must be at most 64 letters, digits, ".", "_" or "-"')
    .default('gatehouse-'),
  /** The share of new traces recorded (0 to 1); the gateway decides, the components behind it follow. */
  sampleRatio: z.number().min(0).max(1).default(1),
});

/**
 * Where the authorization server keeps its state (src/authorization-server/store/). Absent `url`:
 * SQLite in `<dataDir>/gatehouse.db`, for one machine. A PostgreSQL URL: one database shared by
 * every authorization-server instance. The environment variable GATEHOUSE_STORAGE_URL, when set,
 * takes the place of `url`, so a deployment can keep the database password out of this file.
 */
export const storageSchema = z.strictObject({
  /** `postgres://user[:password]@host:5432/db` (or `postgresql://`), or `env:NAME` / `file:PATH` holding one. */
  url: z
    .string()
    .refine(
      (value) => /^(env:|file:|postgres(ql)?:\/\/)/.test(value),
      'must be a postgres:// URL, "env:NAME" or "file:PATH"',
    )
    .optional(),
  /**
   * 32 random bytes (base64 or hex) that seal the signing keys and generated secrets kept in
   * PostgreSQL (AES-256-GCM, store/sealed-box.ts), as `env:NAME` or `file:PATH`, never a literal:
   * the key must not sit beside the database it protects. Required with PostgreSQL; never generated.
   */
  encryptionKey: z
    .string()
    .refine((value) => /^(env:|file:)./.test(value), 'must be "env:NAME" or "file:PATH"')
    .optional(),
  /** The connection pool of each instance (PostgreSQL only). */
  pool: z
    .strictObject({
      /** Connections per instance at most: PostgreSQL's max_connections bounds the sum over instances. */
      max: z.number().int().min(1).max(200).default(10),
      /** How long a request waits for a free connection before it gets 503 with Retry-After. */
      acquireTimeoutMs: z.number().int().min(50).max(60_000).default(2000),
      /** A statement running longer is cancelled by PostgreSQL (statement_timeout). */
      statementTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
    })
    .prefault({}),
});

export const configSchema = z
  .strictObject({
    /** Where state lives: the database, keys and generated secrets. Relative to the config file. */
    dataDir: z.string().default('./data'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    storage: storageSchema.prefault({}),
    http: httpSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    tracing: tracingSchema.prefault({}),
    authorizationServer: authorizationServerSchema.prefault({}),
    gateway: gatewaySchema.prefault({}),
    mcpServer: mcpServerSchema.prefault({}),
    apis: apisSchema.prefault({}),
  })
  .superRefine((config, ctx) => {
    // Every tool names a configured API.
    config.mcpServer.tools.forEach((tool, i) => {
      if (!(tool.api in config.mcpServer.apis)) {
        ctx.addIssue({
          code: 'custom',
          path: ['mcpServer', 'tools', i, 'api'],
          message: `"${tool.api}" is not a key of mcpServer.apis`,
        });
      }
    });
    // An amount is one of the tool's declared arguments.
    config.mcpServer.tools.forEach((tool, i) => {
      const properties = (tool.inputSchema.properties ?? {}) as Record<string, unknown>;
      if (tool.amountArgument && !(tool.amountArgument in properties)) {
        ctx.addIssue({
          code: 'custom',
          path: ['mcpServer', 'tools', i, 'amountArgument'],
          message: `"${tool.amountArgument}" is not a property of the tool's inputSchema`,
        });
      }
    });
    const names = config.mcpServer.tools.map((tool) => tool.name);
    if (new Set(names).size !== names.length) {
      ctx.addIssue({ code: 'custom', path: ['mcpServer', 'tools'], message: 'tool names must be unique' });
    }
  });

export type GatehouseConfig = z.infer<typeof configSchema>;
export type AuthorizationServerConfig = z.infer<typeof authorizationServerSchema>;
export type PreRegisteredClientConfig = z.infer<typeof preRegisteredClient>;
export type UpstreamApiConfig = z.infer<typeof upstreamApi>;
export type ExchangePolicyConfig = z.infer<typeof exchangePolicy>;
export type GatewayConfig = z.infer<typeof gatewaySchema>;
export type McpServerConfig = z.infer<typeof mcpServerSchema>;
export type ToolConfig = z.infer<typeof toolSchema>;
export type ToolRule = z.infer<typeof toolRuleSchema>;
export type ApisConfig = z.infer<typeof apisSchema>;
export type HttpConfig = z.infer<typeof httpSchema>;
export type MetricsConfig = z.infer<typeof metricsSchema>;
export type TracingConfig = z.infer<typeof tracingSchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
