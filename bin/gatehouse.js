#!/usr/bin/env node
// Thin launcher: Node 22.18+ / 24 strips TypeScript types natively, so the CLI runs from source.
import '../src/cli.ts';
