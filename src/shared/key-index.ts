/**
 * Sets of cache keys by name (a grant, a client, a subject), so that a revocation finds the cache
 * entries it concerns without scanning the cache. Used by the gateway's introspection cache and the
 * MCP server's exchange cache; the owner keeps it in step with its cache (add on set, remove on
 * eviction).
 */
export class KeyIndex {
  readonly #sets = new Map<string, Set<string>>();

  add(name: string | undefined, key: string): void {
    if (!name) return;
    let set = this.#sets.get(name);
    if (!set) {
      set = new Set();
      this.#sets.set(name, set);
    }
    set.add(key);
  }

  remove(name: string | undefined, key: string): void {
    if (!name) return;
    const set = this.#sets.get(name);
    set?.delete(key);
    if (set?.size === 0) this.#sets.delete(name);
  }

  /** The keys under `name`, forgotten here (the caller deletes them from its cache). */
  take(name: string): string[] {
    const keys = [...(this.#sets.get(name) ?? [])];
    this.#sets.delete(name);
    return keys;
  }

  clear(): void {
    this.#sets.clear();
  }
}
