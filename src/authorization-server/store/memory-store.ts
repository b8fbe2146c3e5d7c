/**
 * oidc-provider's own in-memory adapter (node_modules/oidc-provider/lib/adapters/memory_adapter.js),
 * for measuring what the SQLite store costs (bench/). Not for deployments: nothing survives a
 * restart, and its LRU forgets the oldest rows (clients, grants, tokens) after about 2,000 entries.
 *
 * oidc-provider does not export the adapter: it is what the provider uses when no `adapter` is
 * configured. Gatehouse wraps its adapter (CIMD clients, refresh token grace), so the module is
 * imported by path, lazily, and checked, so that an oidc-provider upgrade that moves it fails loudly.
 */
import type { Adapter } from 'oidc-provider';

/** A string, so TypeScript does not look for declarations of a module the package does not export. */
const MEMORY_ADAPTER_MODULE = 'oidc-provider/lib/adapters/memory_adapter.js';

/** A factory (`adapter` in the provider configuration) backed by one fresh in-memory store. */
export async function createMemoryAdapterFactory(
  clockTolerance: number,
): Promise<(model: string) => Adapter> {
  const module = (await import(MEMORY_ADAPTER_MODULE)) as {
    createMemoryAdapter?: (clockTolerance: number) => (model: string) => Adapter;
  };
  if (typeof module.createMemoryAdapter !== 'function') {
    throw new Error(`${MEMORY_ADAPTER_MODULE} no longer exports createMemoryAdapter`);
  }
  return module.createMemoryAdapter(clockTolerance);
}
