import { z } from 'zod';
import { ErrorCode, PortcullisError } from '../../../common/src/index.ts';
import type { DataPlaneOptions } from '../../../data-plane/src/index.ts';
import { DEFAULT_READINESS } from '../../../data-plane/src/observability/readiness.ts';
import type { OptionTable, ParsedOptions } from '../options.ts';
import { ENV_ONLY_SECRET, tokenSetting } from './stream-settings.ts';

/** Where a process (a node, the control plane) serves Prometheus metrics, and the token scrapes must send. */
export const metricsSettings = {
  metricsListen: {
    flag: 'metrics-listen',
    env: 'PORTCULLIS_METRICS_LISTEN',
    description:
      'host:port serving Prometheus GET /metrics, apart from the agent-facing port (which never serves them)',
    schema: z
      .string()
      .regex(/^([^\s:]+|\[[0-9a-fA-F:]+\]):\d+$/, 'must be host:port, e.g. 127.0.0.1:9464')
      .transform((v) => {
        const colon = v.lastIndexOf(':');
        return { host: v.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(v.slice(colon + 1)) };
      })
      .refine((v) => v.port <= 65535, 'the port must be 0-65535')
      .optional(),
    defaultLabel: 'off',
  },
  metricsToken: {
    flag: 'metrics-token',
    env: 'PORTCULLIS_METRICS_TOKEN',
    description: 'bearer token scrapes of --metrics-listen must send (Prometheus `authorization` credentials)',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    envOnly: `${ENV_ONLY_SECRET}; set PORTCULLIS_METRICS_TOKEN or give --metrics-token-file <file>`,
  },
  metricsTokenFile: {
    flag: 'metrics-token-file',
    env: 'PORTCULLIS_METRICS_TOKEN_FILE',
    description: 'file holding the metrics bearer token, instead of PORTCULLIS_METRICS_TOKEN',
    schema: z.string().min(1).optional(),
  },
} satisfies OptionTable;

/** `--metrics-listen` with its token (from the environment or a file), checked: off when no address is given. */
export function metricsListenOption(
  settings: ParsedOptions<typeof metricsSettings>,
): { host: string; port: number; token?: string } | undefined {
  const token = tokenSetting(settings.metricsToken, settings.metricsTokenFile, {
    env: 'PORTCULLIS_METRICS_TOKEN',
    fileFlag: 'metrics-token-file',
    what: 'metrics token',
  });
  if (token !== undefined && settings.metricsListen === undefined) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      'a metrics token needs --metrics-listen host:port (metrics are never served on the agent-facing port or the ' +
        'GraphQL API)',
    );
  }
  return settings.metricsListen === undefined
    ? undefined
    : { ...settings.metricsListen, ...(token === undefined ? {} : { token }) };
}

/** A node's readiness (`/readyz`) and where it serves Prometheus metrics. */
export const nodeHealthSettings = {
  readyWhen: {
    flag: 'ready-when',
    env: 'PORTCULLIS_READY_WHEN',
    description:
      '/readyz turns 200 when: "upstreams", the node has a configuration and every enabled upstream in it has ' +
      'connected or failed once (at startup only, at most --ready-timeout-seconds); "config", as soon as it has a ' +
      'configuration',
    schema: z.enum(['upstreams', 'config']).default(DEFAULT_READINESS.readyWhen),
    defaultLabel: DEFAULT_READINESS.readyWhen,
  },
  readyTimeoutSeconds: {
    flag: 'ready-timeout-seconds',
    env: 'PORTCULLIS_READY_TIMEOUT_SECONDS',
    description:
      'with --ready-when upstreams: ready anyway this long after the first configuration, however slow an upstream is',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(0, 'must be at least 0')
      .max(3600, 'must be at most 3600')
      .default(DEFAULT_READINESS.upstreamTimeoutMs / 1000),
    defaultLabel: String(DEFAULT_READINESS.upstreamTimeoutMs / 1000),
  },
  maxConfigAgeSeconds: {
    flag: 'max-config-age-seconds',
    env: 'PORTCULLIS_MAX_CONFIG_AGE_SECONDS',
    description:
      '/readyz turns 503 once the node has been cut off from the control plane this long (revocations may be ' +
      'missed). Off by default: a node keeps serving its last snapshot through a control-plane outage rather than ' +
      'failing every agent',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1')
      .optional(),
    defaultLabel: 'off',
  },
  ...metricsSettings,
} satisfies OptionTable;

export function nodeHealthOptions(
  settings: ParsedOptions<typeof nodeHealthSettings>,
): Pick<DataPlaneOptions, 'readiness' | 'metricsListen'> {
  const metricsListen = metricsListenOption(settings);
  return {
    readiness: {
      readyWhen: settings.readyWhen,
      upstreamTimeoutMs: settings.readyTimeoutSeconds * 1000,
      ...(settings.maxConfigAgeSeconds === undefined ? {} : { maxConfigAgeMs: settings.maxConfigAgeSeconds * 1000 }),
    },
    metricsListen,
  };
}
