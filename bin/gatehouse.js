#!/usr/bin/env node
// Thin launcher: Node 22.18+ / 24 strips TypeScript types natively, so the CLI runs from source.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `gatehouse: Node.js 22.18 or newer is needed (this is ${process.version}).\n` +
      'Run it through npm (npm start, npx gatehouse ...): npm puts the Node 24 installed with the project first on PATH.\n' +
      'Or install Node.js 24 LTS.',
  );
  process.exit(1);
}
await import('../src/cli.ts');
