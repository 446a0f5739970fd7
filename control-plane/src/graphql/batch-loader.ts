/**
 * Collects the keys asked for in one tick and loads them with one call: resolvers of a list
 * (an upstream's tools, a key's team) make one query per field, not one per row.
 */
export class BatchLoader<K, V> {
  private pending: Array<{ key: K; resolve: (value: V) => void; reject: (error: unknown) => void }> = [];

  constructor(
    private readonly loadMany: (keys: readonly K[]) => Promise<Map<K, V>>,
    private readonly fallback: V,
  ) {}

  load(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      if (this.pending.length === 0) queueMicrotask(() => setImmediate(() => this.flush()));
      this.pending.push({ key, resolve, reject });
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    const keys = [...new Set(batch.map((entry) => entry.key))];
    this.loadMany(keys).then(
      (values) => batch.forEach((entry) => entry.resolve(values.has(entry.key) ? values.get(entry.key)! : this.fallback)),
      (error: unknown) => batch.forEach((entry) => entry.reject(error)),
    );
  }
}

/** Groups rows by a key into a map of arrays. */
export function groupBy<K, V>(rows: readonly V[], keyOf: (row: V) => K): Map<K, V[]> {
  const groups = new Map<K, V[]>();
  for (const row of rows) {
    const key = keyOf(row);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  return groups;
}
