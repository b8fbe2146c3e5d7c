/**
 * `gatehouse agent`: the command line over createAgent().
 *
 *   gatehouse agent <mcp-url>                             the interactive shell
 *   gatehouse agent <mcp-url> call <tool> --args '<json>'  one call, the result on stdout
 *   gatehouse agent <mcp-url> tools|scopes|logout          one command
 *   gatehouse agent <mcp-url> chat --model-url URL --model NAME   a conversation with a model that calls the tools
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LINK_LIFETIME_MS, MAX_SIGN_IN_LINKS, signInLinkMessage } from './authorization.ts';
import { openSystemBrowser } from './browser.ts';
import { runChatShell } from './chat/chat-shell.ts';
import type { ChatModel } from './chat/model.ts';
import { chatModel, modelSettingsFrom } from './chat/model-settings.ts';
import { defaultConfigPath, loadAgentConfig } from './config.ts';
import { AgentError, EXIT_CODES } from './errors.ts';
import { createAgent } from './index.ts';
import { type CommandOutput, describeError, runCommand, runShell } from './shell.ts';
import { defaultStorePath } from './token-store.ts';

export const AGENT_USAGE = `Usage:
  gatehouse agent <mcp-url> [options]                         interactive shell (type help)
  gatehouse agent <mcp-url> call <tool> [--args JSON]         call one tool; its result on stdout
  gatehouse agent <mcp-url> tools | scopes | logout           run one command
  gatehouse agent <mcp-url> chat [model options]              talk to a language model that calls the tools

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

Model options (chat; else "model" in the --config file):
  --model-api openai|anthropic  OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, LM Studio;
                              the default) or Anthropic's Messages API
  --model-url URL             the API base, e.g. https://api.openai.com/v1, http://localhost:11434/v1,
                              https://api.anthropic.com
  --model NAME                the model, e.g. gpt-4.1, llama3.1, claude-sonnet-4-5
  --model-key-env NAME        the environment variable holding the API key (default
                              GATEHOUSE_AGENT_MODEL_KEY); the key is never printed or traced

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
const COMMANDS = new Set([...ONE_SHOT, 'chat']);
const MODEL_FLAGS = ['model-api', 'model-url', 'model', 'model-key-env'] as const;

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
  if (!serverUrl || (command && !COMMANDS.has(command))) {
    say(
      `gatehouse agent: ${serverUrl ? `unknown command "${command}"` : 'the MCP server URL is missing'}\n\n${AGENT_USAGE}`,
    );
    return EXIT_CODES.usage;
  }
  if (values.args !== undefined && command !== 'call') {
    say('gatehouse agent: --args goes with call <tool>');
    return EXIT_CODES.usage;
  }
  const modelFlag = MODEL_FLAGS.find((flag) => values[flag] !== undefined);
  if (modelFlag && command !== 'chat') {
    say(`gatehouse agent: --${modelFlag} goes with chat`);
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
  let model: ChatModel | undefined;
  try {
    const config = loadAgentConfig(values.config ?? defaultConfigPath(io.env), values.config !== undefined);
    if (command === 'chat') {
      model = chatModel(
        modelSettingsFrom(
          {
            api: values['model-api'],
            url: values['model-url'],
            name: values.model,
            keyEnv: values['model-key-env'],
          },
          config.model,
          io.env,
          values.trace ? say : undefined,
        ),
      );
    }
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
    if (model) {
      await runChatShell(agent, model, {
        input: io.stdin,
        prompt: io.interactive ? io.stdout : undefined,
        output,
      });
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
      'model-api': { type: 'string' },
      'model-url': { type: 'string' },
      model: { type: 'string' },
      'model-key-env': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
