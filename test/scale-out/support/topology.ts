/**
 * Two of every component, as real `gatehouse serve <component>` processes, each pair behind a
 * balancer that fails over from a killed instance (test/helpers/balancer.ts), the authorization
 * servers on one PostgreSQL database: what docs/deployment.md ("Several instances") describes, on
 * loopback.
 *
 * Every published URL is a balancer's: the issuer, the gateway's public URL (so the MCP server's
 * canonical URI), the MCP server and API upstreams. Instance `i` of each component reads
 * `config-i.json`, which differs from the other only in the listen ports and the data directory.
 * The internal clients' secrets come from the environment (`env:`), as a deployment's secret store
 * would hand them to every instance.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type LoopbackUrls,
  loopbackStackSections,
  loopbackUrls,
} from '../../../src/launcher/loopback-config.ts';
import { type Balancer, startBalancer } from '../../helpers/balancer.ts';
import { freePort } from '../../helpers/ports.ts';
import { createTestDatabase, type TestDatabase, testEncryptionKey } from '../../helpers/postgres.ts';
import { type ComponentName, ComponentProcess } from '../../load/support/stack.ts';

export const INSTANCES = 2;
type Section = Record<string, unknown>;

/** The environment variables holding the internal clients' secrets (`env:` references). */
const SECRET_ENV = {
  gateway: 'GATEHOUSE_SCALE_OUT_GATEWAY_SECRET',
  mcpServer: 'GATEHOUSE_SCALE_OUT_MCP_SERVER_SECRET',
  admin: 'GATEHOUSE_SCALE_OUT_ADMIN_SECRET',
} as const;

const COMPONENT_KEYS: Record<ComponentName, 'authorizationServer' | 'gateway' | 'mcpServer' | 'apis'> = {
  'authorization-server': 'authorizationServer',
  gateway: 'gateway',
  'mcp-server': 'mcpServer',
  apis: 'apis',
};

export interface TopologyOptions {
  /** Extra settings of the authorization server section (both instances). */
  authorizationServer?: Section;
  /**
   * One data directory per instance (as on separate machines), or one both share. Keys, generated
   * secrets and the subject key must then come from the shared store.
   */
  separateDataDirs: boolean;
}

export class Topology {
  readonly dir: string;
  readonly urls: LoopbackUrls;
  readonly database: TestDatabase;
  readonly balancers: Record<ComponentName, Balancer>;
  /** `instances[name][i]`: instance i of a component. */
  readonly instances: Record<ComponentName, ComponentProcess[]>;
  /** Each instance's own port, by component (what its balancer sends to). */
  readonly ports: Record<ComponentName, number[]>;
  readonly secrets: Record<keyof typeof SECRET_ENV, string>;

  private constructor(init: {
    dir: string;
    urls: LoopbackUrls;
    database: TestDatabase;
    balancers: Record<ComponentName, Balancer>;
    instances: Record<ComponentName, ComponentProcess[]>;
    ports: Record<ComponentName, number[]>;
    secrets: Record<keyof typeof SECRET_ENV, string>;
  }) {
    this.dir = init.dir;
    this.urls = init.urls;
    this.database = init.database;
    this.balancers = init.balancers;
    this.instances = init.instances;
    this.ports = init.ports;
    this.secrets = init.secrets;
  }

  /** Creates the database, the balancers and the configuration files; starts nothing. */
  static async create(options: TopologyOptions): Promise<Topology> {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-scale-out-'));
    const database = await createTestDatabase();
    const names: ComponentName[] = ['authorization-server', 'gateway', 'mcp-server', 'apis'];
    const ports = {} as Record<ComponentName, number[]>;
    const balancers = {} as Record<ComponentName, Balancer>;
    for (const name of names) {
      ports[name] = [];
      for (let i = 0; i < INSTANCES; i += 1) ports[name].push(await freePort());
      // The balancer binds its own port at once (port 0): nothing can take it in between.
      balancers[name] = await startBalancer(ports[name], 0, { failover: true });
    }
    const urls = loopbackUrls({
      authorizationServer: balancers['authorization-server'].port,
      gateway: balancers.gateway.port,
      mcpServer: balancers['mcp-server'].port,
      apis: balancers.apis.port,
    });
    const secrets = {
      gateway: randomBytes(32).toString('base64url'),
      mcpServer: randomBytes(32).toString('base64url'),
      admin: randomBytes(32).toString('base64url'),
    };
    const env = {
      [SECRET_ENV.gateway]: secrets.gateway,
      [SECRET_ENV.mcpServer]: secrets.mcpServer,
      [SECRET_ENV.admin]: secrets.admin,
    };
    const instances = {} as Record<ComponentName, ComponentProcess[]>;
    for (const name of names) instances[name] = [];
    for (let i = 0; i < INSTANCES; i += 1) {
      const dataDir = path.join(dir, options.separateDataDirs ? `data-${i}` : 'data');
      mkdirSync(dataDir, { recursive: true });
      const configFile = path.join(dir, `config-${i}.json`);
      writeFileSync(
        configFile,
        JSON.stringify(instanceConfig(i, { urls, ports, database, dataDir, options })),
      );
      for (const name of names) {
        instances[name].push(
          new ComponentProcess(
            name,
            { dir, configFile, env },
            { label: `${name}-${i}`, limitOpenFiles: false },
          ),
        );
      }
    }
    return new Topology({ dir, urls, database, balancers, instances, ports, secrets });
  }

  /** The URL of instance `i` of a component, past its balancer. */
  instanceUrl(name: ComponentName, i: number): string {
    return `http://127.0.0.1:${this.ports[name][i]}`;
  }

  /**
   * Starts every instance: the authorization servers first (the others need their issuer), then
   * the rest. `together` starts the two authorization servers at once, as a rolling deployment may.
   */
  async start(options: { together?: boolean } = {}): Promise<void> {
    const servers = this.instances['authorization-server'];
    if (options.together) await Promise.all(servers.map((server) => server.start()));
    else for (const server of servers) await server.start();
    await Promise.all(
      (['apis', 'mcp-server', 'gateway'] as const).flatMap((name) =>
        this.instances[name].map((instance) => instance.start()),
      ),
    );
  }

  /** Every instance's recent lines, for a failure report. */
  recentLines(): string {
    return Object.values(this.instances)
      .flat()
      .map((instance, index) => `--- ${instance.name} #${index}\n${instance.recent.slice(-15).join('\n')}`)
      .join('\n');
  }

  async close(): Promise<void> {
    await Promise.all(
      Object.values(this.instances)
        .flat()
        .map(async (instance) => {
          await instance.stop('SIGTERM', 10_000);
          await instance.closeLog();
        }),
    );
    for (const balancer of Object.values(this.balancers)) await balancer.close();
    await this.database.drop();
    if (!process.env.GATEHOUSE_KEEP_TEST_FILES) rmSync(this.dir, { recursive: true, force: true });
  }
}

function instanceConfig(
  i: number,
  context: {
    urls: LoopbackUrls;
    ports: Record<ComponentName, number[]>;
    database: TestDatabase;
    dataDir: string;
    options: TopologyOptions;
  },
) {
  const { urls, ports, database, dataDir, options } = context;
  const sections = loopbackStackSections({
    authorizationServer: Number(new URL(urls.issuer).port),
    gateway: Number(new URL(urls.gatewayUrl).port),
    mcpServer: Number(new URL(urls.mcpServerUrl).port),
    apis: Number(new URL(urls.apisUrl).port),
  }) as Record<string, Section>;
  for (const name of Object.keys(COMPONENT_KEYS) as ComponentName[]) {
    const key = COMPONENT_KEYS[name];
    sections[key] = { ...sections[key], listen: { host: '127.0.0.1', port: ports[name][i] } };
  }
  return {
    dataDir,
    logLevel: 'info',
    storage: { url: database.url, encryptionKey: testEncryptionKey() },
    authorizationServer: {
      ...sections.authorizationServer,
      clients: [
        {
          clientId: 'gatehouse-gateway',
          name: 'Gatehouse gateway',
          role: 'gateway',
          authMethod: 'client_secret_basic',
          secret: `env:${SECRET_ENV.gateway}`,
        },
        {
          clientId: 'gatehouse-mcp-server',
          name: 'Gatehouse MCP server',
          role: 'mcp-server',
          authMethod: 'client_secret_basic',
          secret: `env:${SECRET_ENV.mcpServer}`,
        },
        {
          clientId: 'gatehouse-admin',
          name: 'Gatehouse admin scripts',
          role: 'admin',
          authMethod: 'client_secret_basic',
          secret: `env:${SECRET_ENV.admin}`,
          scopes: ['admin'],
        },
      ],
      ...options.authorizationServer,
    },
    gateway: {
      ...sections.gateway,
      client: { clientId: 'gatehouse-gateway', secret: `env:${SECRET_ENV.gateway}` },
    },
    mcpServer: {
      ...sections.mcpServer,
      client: { clientId: 'gatehouse-mcp-server', secret: `env:${SECRET_ENV.mcpServer}` },
    },
    apis: sections.apis,
  };
}
