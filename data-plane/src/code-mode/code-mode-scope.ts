import { CodeMode } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { CatalogViews } from '../mcp/catalog-views.ts';
import type { Principal } from '../policy/principal.ts';

/** The upstreams a principal reaches through the meta-tools, and a key naming that set. */
export interface CodeModeScope {
  readonly includes: (upstream: string) => boolean;
  /** Equal for equal scopes: caches key on it, and a change of it changes the key's tools/list. */
  readonly key: string;
}

const EVERY_UPSTREAM: CodeModeScope = Object.freeze({ includes: () => true, key: '*' });

/**
 * Whether a principal is in code mode, and for which upstreams: none when its key says OFF, every
 * upstream when ON, and with INHERIT the upstreams in code mode, when it may use any of them.
 */
export function codeModeScope(
  principal: Principal,
  config: AppliedConfig | undefined,
  views: CatalogViews,
): CodeModeScope | undefined {
  const mode = principal.codeMode ?? CodeMode.CODE_MODE_INHERIT;
  if (mode === CodeMode.CODE_MODE_OFF) return undefined;
  if (mode === CodeMode.CODE_MODE_ON) return EVERY_UPSTREAM;
  const upstreams = config?.codeModeUpstreams;
  if (upstreams === undefined || upstreams.size === 0) return undefined;
  let usable = false;
  for (const upstream of upstreams) if (views.mayUseUpstream(principal.allowList, upstream)) usable = true;
  if (!usable) return undefined;
  return { includes: (upstream) => upstreams.has(upstream), key: [...upstreams].sort().join('\u0000') };
}
