/**
 * `gatehouse agent`: the command line over createAgent().
 *
 *   gatehouse agent <mcp-url>                             the interactive shell
 *   gatehouse agent <mcp-url> call <tool> --args '<json>'  one call, the result on stdout
 *   gatehouse agent <mcp-url> tools|scopes|logout          one command
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LINK_LIFETIME_MS, MAX_SIGN_IN_LINKS, signInLinkMessage } from './authorization.ts';
import { openSystemBrowser } from './browser.ts';
import { defaultConfigPath, loadAgentConfig } from './config.ts';
import { AgentError, EXIT_CODES } from './errors.ts';
import { createAgent } from './index.ts';
import { type CommandOutput, describeError, runCommand, runShell } from './shell.ts';
import { defaultStorePath } from './token-store.ts';

export const AGENT_USAGE = `Usage:
  gatehouse agent <mcp-url> [options]                         interactive shell (type help)
  gatehouse agent <mcp-url> call <tool> [--args JSON]         call one tool; its result on stdout
  gatehouse agent <mcp-url> tools | scopes | logout           run one command

Options:
  --client-id ID              use a pre-registered client (else: a client metadata document, else
                              dynamic registration, as the MCP authorization spec orders them)
  --client-secret SECRET      its secret (or set GATEHOUSE_AGENT_CLIENT_SECRET)
  --private-key FILE          its private JWK, for private_key_jwt; makes the agent a workload
                              (client credentials, no browser), e.g. data/secrets/example-workload.private-key.json
  --workload                  client credentials with --client-secret too
  --client-metadata-url URL   this agent's Client ID Metadata Document (its client_id)
  --scope "A B"               the scope of the first sign-in (default: what the server asks for)
  --no-browser                print the sign-in link instead of opening a browser
  --trace                     print every HTTP exchange and MCP message to stderr, credentials redacted
  --store FILE                credentials file (default ${defaultStorePath()})
  --config FILE               pre-registered clients per authorization server (default ${defaultConfigPath()})
  --timeout SECONDS           how long to wait for the sign-in (default 300), across every link
  --link-lifetime SECONDS     how long a sign-in link lives when the server does not say (default
                              ${DEFAULT_LINK_LIFETIME_MS / 1000}); after it, a new link replaces it (at most ${MAX_SIGN_IN_LINKS})
  -h, --help                  show this text

Exit codes: 0 success, 1 the tool failed, 2 usage, 3 authorization, 4 network, 5 server error.`;

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** Whether stdin is a terminal (prompts are shown only then). */
  interactive: boolean;
  env: NodeJS.ProcessEnv;
}

const ONE_SHOT = new Set(['call', 'tools', 'scopes', 'logout']);

export async function runAgentCli(argv: string[], io: CliIo): Promise<number> {
  const say = (text: string) => io.stderr.write(`${text}\n`);
  const output: CommandOutput = { out: (text) => io.stdout.write(`${text}\n`), err: say };
  const fail = (error: unknown) => {
    say(`gatehouse agent: ${describeError(error)}`);
    return error instanceof AgentError ? EXIT_CODES[error.kind] : EXIT_CODES.server;
  };

  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    say(`gatehouse agent: ${(error as Error).message}\n\n${AGENT_USAGE}`);
    return EXIT_CODES.usage;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(`${AGENT_USAGE}\n`);
    return 0;
  }
  const [serverUrl, command, ...rest] = positionals;
  if (!serverUrl || (command && !ONE_SHOT.has(command))) {
    say(
      `gatehouse agent: ${serverUrl ? `unknown command "${command}"` : 'the MCP server URL is missing'}\n\n${AGENT_USAGE}`,
    );
    return EXIT_CODES.usage;
  }
  if (values.args !== undefined && command !== 'call') {
    say('gatehouse agent: --args goes with call <tool>');
    return EXIT_CODES.usage;
  }
  const timeout = values.timeout === undefined ? 300 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    say('gatehouse agent: --timeout must be a number of seconds');
    return EXIT_CODES.usage;
  }
  const linkLifetime = values['link-lifetime'] === undefined ? undefined : Number(values['link-lifetime']);
  if (linkLifetime !== undefined && (!Number.isFinite(linkLifetime) || linkLifetime <= 0)) {
    say('gatehouse agent: --link-lifetime must be a number of seconds');
    return EXIT_CODES.usage;
  }

  let agent: ReturnType<typeof createAgent>;
  try {
    const config = loadAgentConfig(values.config ?? defaultConfigPath(io.env), values.config !== undefined);
    agent = createAgent({
      serverUrl,
      storePath: values.store ?? defaultStorePath(io.env),
      clientId: values['client-id'],
      clientSecret:
        values['client-secret'] ?? (values['client-id'] ? io.env.GATEHOUSE_AGENT_CLIENT_SECRET : undefined),
      privateKeyFile: values['private-key'],
      clients: config.clients,
      clientMetadataUrl: values['client-metadata-url'] ?? config.clientMetadataUrl,
      workload: values.workload ? true : undefined,
      scope: values.scope,
      authorizationTimeoutMs: timeout * 1000,
      signInLinkLifetimeMs: linkLifetime === undefined ? undefined : linkLifetime * 1000,
      trace: values.trace ? say : undefined,
      // The standard OpenTelemetry variables: the agent has no Gatehouse configuration file.
      otlpEndpoint:
        io.env.OTEL_SDK_DISABLED === 'true' ? undefined : io.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined,
      note: (message) => say(`· ${message}`),
      openUrl: values['no-browser']
        ? (url, link) => say(signInLinkMessage(url, link, false))
        : (url, link) => {
            say(signInLinkMessage(url, link, true));
            openSystemBrowser(url, (reason) =>
              say(`· could not open a browser (${reason}); use the link above`),
            );
          },
    });
  } catch (error) {
    return fail(error);
  }

  try {
    if (!command) {
      await runShell(agent, { input: io.stdin, prompt: io.interactive ? io.stdout : undefined, output });
      return 0;
    }
    const argument =
      command === 'call' ? [rest.join(' '), values.args ?? ''].filter(Boolean).join(' ') : rest.join(' ');
    const ok = await runCommand(agent, command, argument, output);
    return ok === false ? EXIT_CODES.tool : 0;
  } catch (error) {
    return fail(error);
  } finally {
    await agent.close();
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'private-key': { type: 'string' },
      workload: { type: 'boolean' },
      'client-metadata-url': { type: 'string' },
      scope: { type: 'string' },
      'no-browser': { type: 'boolean' },
      trace: { type: 'boolean' },
      store: { type: 'string' },
      config: { type: 'string' },
      timeout: { type: 'string' },
      'link-lifetime': { type: 'string' },
      args: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
