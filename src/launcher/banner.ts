/**
 * What `gatehouse start` prints once the stack is up: where to point an MCP client, how to sign in,
 * and one-line recipes for the clients people use.
 */
import type { GatehouseConfig } from '../shared/config/schema.ts';

export function readyBanner(config: GatehouseConfig, urls: { issuer: string; devInbox: boolean }): string {
  const mcpUrl = config.authorizationServer.resources.mcp.uri;
  const users = config.authorizationServer.users;
  const lines = [
    '',
    'Gatehouse is running.',
    '',
    `  ${'MCP server'.padEnd(22)}${mcpUrl}`,
    `  ${'Authorization server'.padEnd(22)}${urls.issuer}`,
  ];
  if (urls.devInbox) {
    lines.push(
      `  ${'Development inbox'.padEnd(22)}${urls.issuer}/dev/inbox   (sign-in codes; development only)`,
    );
  }
  const administrators = config.authorizationServer.administrators;
  lines.push(
    `  ${'Admin console'.padEnd(22)}${urls.issuer}/admin   (${
      administrators.length > 0
        ? `administrators: ${administrators.join(', ')}`
        : 'no administrators: set authorizationServer.administrators'
    })`,
    `  ${'Your agents'.padEnd(22)}${urls.issuer}/account   (every user's own page)`,
  );
  lines.push('', 'Approved test users (sign in with a one-time code sent by email):');
  for (const user of users.approved) {
    const claims = Object.entries(user.claims)
      .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(',') : value}`)
      .join(' ');
    lines.push(`  ${user.email}${claims ? `  (${claims})` : ''}`);
  }
  for (const domain of users.domains) lines.push(`  anyone @${domain.domain}`);
  lines.push(
    '',
    'Connect a client:',
    `  This project's agent  npx gatehouse agent ${mcpUrl}`,
    `  MCP Inspector         npx @modelcontextprotocol/inspector   (Transport: Streamable HTTP, URL: ${mcpUrl})`,
    `  Claude Code           claude mcp add --transport http gatehouse ${mcpUrl}`,
    `  VS Code               code --add-mcp '{"name":"gatehouse","type":"http","url":"${mcpUrl}"}'`,
    `  mcp-remote            npx mcp-remote ${mcpUrl}`,
    '',
    'More in docs/clients.md. Press Ctrl-C to stop.',
    '',
  );
  return lines.join('\n');
}
