/**
 * `gatehouse <command>`: the one entry point for every component.
 *
 *   gatehouse serve authorization-server [--config FILE]
 */
import { parseArgs } from 'node:util';
import { startAuthorizationServer } from './authorization-server/server.ts';
import { ConfigError, loadConfig } from './shared/config/load.ts';

const USAGE = `Usage:
  gatehouse serve authorization-server [--config FILE]   run the authorization server alone
  gatehouse help                                         show this text

Options:
  -c, --config FILE   configuration file (YAML or JSON); without one, the safe built-in defaults
                      (see docs/configuration.md)`;

const COMPONENTS = {
  'authorization-server': startAuthorizationServer,
} as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, component] = positionals;
  if (values.help || !command || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (command !== 'serve' || !component || !(component in COMPONENTS)) {
    console.error(`gatehouse: unknown command "${positionals.join(' ')}"\n\n${USAGE}`);
    return 2;
  }
  const loaded = loadConfig(values.config);
  const running = await COMPONENTS[component as keyof typeof COMPONENTS](loaded);
  console.log(`Authorization server ready at ${running.issuer}`);
  if (running.devInbox) console.log(`Development inbox: ${running.issuer}/dev/inbox`);
  const stop = async () => {
    await running.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    // Configuration and start-up errors say what to do; anything else is a bug worth its message only.
    const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
    console.error(`gatehouse: ${message}`);
    process.exit(1);
  },
);
