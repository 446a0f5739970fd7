import type { Variant } from '../options.ts';
import type { GatewayVariantPath, PathKind } from '../results.ts';
import type { BaselineTree } from './baseline.ts';
import { GatewayUnavailable, startPortcullis, type GatewaySetup, type RunningGateway } from './portcullis.ts';

/**
 * The gateways measured beside the current `portcullis` on the stdio rows: the current tree started
 * otherwise (`--variants`) and a baseline commit's tree (`--baseline`). Each is a control plane and a
 * node of its own, so that nothing of one (a budget in the config, a recorder) reaches the other, with
 * the same upstreams as `portcullis` (the Streamable HTTP one too, though only its stdio rows are
 * measured): a node's background work (an upstream's notification stream, its health) is then the
 * same on both sides, and its CPU, spread over the calls of a row, does not read as the variant's.
 */

export const VARIANT_SETUPS: Record<Variant, { path: GatewayVariantPath; setup: GatewaySetup }> = {
  'audit-off': { path: 'portcullis (audit off)', setup: { nodeArgs: ['--audit', 'off'] } },
  'limits-on': { path: 'portcullis (limits on)', setup: { limits: true } },
};

export interface ExtraGateway {
  path: PathKind;
  running: RunningGateway;
}

/** Starts each; one that does not start is left out, with why in the notes. */
export async function startExtraGateways(
  httpUpstreamUrl: string | undefined,
  variants: ReadonlySet<Variant>,
  baseline: BaselineTree | undefined,
  note: (line: string) => void,
  progress: (line: string) => void,
): Promise<ExtraGateway[]> {
  const wanted: Array<{ path: PathKind; setup: GatewaySetup; hint?: string }> = [];
  if (baseline) {
    const drift = baseline.dependencyDrift;
    wanted.push({
      path: `portcullis@${baseline.shortSha}`,
      setup: { root: baseline.root },
      ...(drift.length
        ? { hint: `its package.json pins dependencies this checkout has otherwise: ${drift.join(', ')}` }
        : {}),
    });
  }
  for (const variant of variants) wanted.push(VARIANT_SETUPS[variant]);
  const started: ExtraGateway[] = [];
  for (const { path, setup, hint } of wanted) {
    progress(`starting ${path} (control plane + one data-plane node)…`);
    try {
      started.push({ path, running: await startPortcullis(httpUpstreamUrl, setup) });
    } catch (error) {
      if (!(error instanceof GatewayUnavailable)) throw error;
      const line = `${path} not measured: ${error.message}${hint ? `; ${hint}` : ''}`;
      note(line);
      progress(line);
    }
  }
  return started;
}
