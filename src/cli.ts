/**
 * `gatehouse <command>`: the one entry point for every component.
 *
 *   gatehouse serve <component> [--config FILE]
 *   gatehouse migrate-store [--config FILE] [--from PATH] [--to URL]
 *   gatehouse agent <mcp-url> [command] [options]   (src/agent/cli.ts)
 */
import { constants as osConstants } from 'node:os';
import { parseArgs } from 'node:util';
import { startApis } from './apis/server.ts';
import { startAuthorizationServer } from './authorization-server/server.ts';
import { startGateway } from './gateway/server.ts';
import { readyBanner } from './launcher/banner.ts';
import { startStack } from './launcher/stack.ts';
import { startMcpServer } from './mcp-server/server.ts';
import type { RunningComponent, StartComponent } from './shared/component.ts';
import { loadConfig } from './shared/config/load.ts';

const USAGE = `Usage:
  gatehouse start [--config FILE]                        the whole stack on one machine (what npm start runs)
  gatehouse serve authorization-server [--config FILE]   the OAuth authorization server (default http://localhost:9000)
  gatehouse serve gateway [--config FILE]                the phantom-token gateway (default http://localhost:8000)
  gatehouse serve mcp-server [--config FILE]             the utility MCP server (default 127.0.0.1:8001, behind the gateway)
  gatehouse serve apis [--config FILE]                   the example stocks and customers APIs (default 127.0.0.1:8002)
  gatehouse migrate-store [--config FILE] [--from DIR] [--to URL]
                                                         copy the SQLite store into an empty PostgreSQL database
                                                         (default: the data directory and storage.url of the configuration)
  gatehouse agent <mcp-url> [call <tool> --args JSON]    the MCP agent: a shell, or one command (gatehouse agent --help)
  gatehouse help                                         show this text

Options:
  -c, --config FILE   configuration file (YAML or JSON); without one, the safe built-in defaults
                      (see docs/configuration.md)`;

const COMPONENTS: Record<string, { title: string; start: StartComponent }> = {
  'authorization-server': {
    title: 'Authorization server',
    start: async (loaded, options) => {
      const running = await startAuthorizationServer(loaded, options);
      if (running.devInbox) console.log(`Development inbox: ${running.issuer}/dev/inbox`);
      return { url: running.issuer, close: (closeOptions) => running.close(closeOptions) };
    },
  },
  gateway: { title: 'Gateway', start: startGateway },
  'mcp-server': { title: 'MCP server', start: startMcpServer },
  apis: { title: 'Example APIs', start: startApis },
};

async function main(argv: string[]): Promise<number> {
  // The agent has its own options; it is a client of the stack, loaded only when asked for.
  if (argv[0] === 'agent') return agent(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      from: { type: 'string' },
      to: { type: 'string' },
    },
  });
  const [command, name] = positionals;
  if (values.help || !command || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (command === 'start' && !name) return start(values.config);
  if (command === 'migrate-store' && !name) {
    const { runMigrateStore } = await import('./authorization-server/store/migrate-store-command.ts');
    return runMigrateStore(values);
  }
  if (values.from !== undefined || values.to !== undefined) {
    console.error(`gatehouse: --from and --to belong to migrate-store\n\n${USAGE}`);
    return 2;
  }
  const component = command === 'serve' && name ? COMPONENTS[name] : undefined;
  if (!component) {
    console.error(`gatehouse: unknown command "${positionals.join(' ')}"\n\n${USAGE}`);
    return 2;
  }
  const loaded = loadConfig(values.config);
  const running: RunningComponent = await component.start(loaded);
  console.log(`${component.title} ready at ${running.url}`);
  stopOnSignal(running, loaded.config.http.drainTimeoutSeconds);
  return -1;
}

/**
 * SIGTERM or Ctrl-C (SIGINT) drains: the listeners stop accepting, requests in flight finish within
 * `http.drainTimeoutSeconds`, then the process exits 0. A second signal exits at once, with the
 * conventional 128 + signal number.
 */
function stopOnSignal(running: { close(): Promise<void> }, drainTimeoutSeconds: number) {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      console.log(`${signal} again: exiting without waiting`);
      process.exit(128 + (osConstants.signals[signal] ?? 0));
    }
    stopping = true;
    console.log(
      `${signal}: finishing requests in flight (at most ${drainTimeoutSeconds} s; send it again to exit now)`,
    );
    // A backstop: the drain is bounded already, but a stuck close must not keep the process alive.
    setTimeout(
      () => {
        console.error('gatehouse: components did not stop in time; exiting');
        process.exit(1);
      },
      (drainTimeoutSeconds + 5) * 1000,
    ).unref();
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(
          `gatehouse: stopping failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** `gatehouse agent ...`: runs the agent, and lets its output reach the pipe before the exit. */
async function agent(argv: string[]): Promise<number> {
  const { runAgentCli } = await import('./agent/cli.ts');
  const code = await runAgentCli(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    interactive: Boolean(process.stdin.isTTY),
    env: process.env,
  });
  const flushed = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => stream.write('', () => resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  return code;
}

/** `gatehouse start`: the whole stack, with progress and a ready banner. */
async function start(configFile: string | undefined): Promise<number> {
  const loaded = loadConfig(configFile);
  console.log(
    `Starting Gatehouse (${loaded.file ? `configuration ${loaded.file}` : 'built-in configuration'}, data in ${loaded.dataDir})`,
  );
  const stack = await startStack(loaded, {
    onStarted: (component, url) => console.log(`  ✓ ${component.padEnd(21)} ${url}`),
  });
  console.log(
    readyBanner(loaded.config, {
      issuer: stack.authorizationServer.issuer,
      devInbox: stack.authorizationServer.devInbox !== undefined,
    }),
  );
  stopOnSignal(stack, loaded.config.http.drainTimeoutSeconds);
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    // Configuration and start-up errors say what to do; nothing else is shown to the user but the message.
    console.error(`gatehouse: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
