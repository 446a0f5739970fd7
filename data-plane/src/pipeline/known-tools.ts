import type { AppliedConfig } from '../config/applied-config.ts';
import { NAME_SEPARATOR } from '../policy/allow-list.ts';
import type { UpstreamRouter } from '../upstream/upstream-router.ts';

/**
 * The tools this node has seen each upstream offer, kept while the upstream is away (reconnecting,
 * down, restarting), so that a call to one of them is answered "unavailable, retry" rather than
 * "not found". An upstream that has not delivered a catalog on this node yet (a node just started,
 * an upstream still connecting) is known only by its configured prefix: a name `<upstream>__…` of a
 * configured, enabled upstream that is not serving counts as its tool. The caller still applies
 * the key's allow-list, so nothing is revealed that the key could not list when the upstream is up.
 */
export class KnownTools {
  /** Exposed tool name → upstream, from the last catalog each upstream delivered. */
  private byName = new Map<string, string>();
  /** Upstream → its exposed tool names in that catalog. */
  private readonly byUpstream = new Map<string, readonly string[]>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly router: UpstreamRouter,
    private readonly getConfig: () => AppliedConfig | undefined,
  ) {
    this.unsubscribe = router.onCatalogChanged((kind) => {
      if (kind === 'tools') this.remember();
    });
    this.remember();
  }

  /**
   * The upstream of `name` when it is known here but its upstream is not serving right now and is
   * still configured and enabled; undefined otherwise (then the name is truly unknown, or its
   * upstream is serving and no longer offers it).
   */
  unavailableUpstream(name: string): string | undefined {
    const serving = new Set(this.router.upstreams().map((u) => u.name));
    const remembered = this.byName.get(name);
    if (remembered !== undefined)
      return serving.has(remembered) || !this.configured(remembered) ? undefined : remembered;
    const at = name.indexOf(NAME_SEPARATOR);
    if (at <= 0) return undefined;
    const prefix = name.slice(0, at);
    return !serving.has(prefix) && !this.byUpstream.has(prefix) && this.configured(prefix) ? prefix : undefined;
  }

  close(): void {
    this.unsubscribe();
  }

  private configured(upstream: string): boolean {
    return this.getConfig()?.upstreams.some((u) => u.name === upstream && !u.disabled) === true;
  }

  /** Takes the catalog of every serving upstream; an absent upstream keeps what it offered last. */
  private remember(): void {
    const fresh = new Map<string, string[]>();
    for (const upstream of this.router.upstreams()) fresh.set(upstream.name, []);
    for (const entry of this.router.catalog('tools')) fresh.get(entry.upstreamName)?.push(entry.key);
    for (const [upstream, names] of fresh) this.byUpstream.set(upstream, names);
    const config = this.getConfig();
    if (config !== undefined)
      for (const upstream of [...this.byUpstream.keys()])
        if (!config.upstreams.some((u) => u.name === upstream)) this.byUpstream.delete(upstream);
    const byName = new Map<string, string>();
    for (const [upstream, names] of this.byUpstream) for (const name of names) byName.set(name, upstream);
    this.byName = byName;
  }
}
