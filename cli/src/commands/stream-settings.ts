import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ErrorCode, PortcullisError, errorMessage } from '../../../common/src/index.ts';
import type { DataPlaneOptions } from '../../../data-plane/src/index.ts';
import { DEFAULT_RECONNECT } from '../../../data-plane/src/config/channel-options.ts';
import type { GrpcTls } from '../../../control-plane/src/grpc/server.ts';
import { listOption, type OptionTable, type ParsedOptions } from '../options.ts';

/** Settings of the config stream: the node token, TLS on both ends, the addresses and backoff of a node. */

const ARGV_SECRET = 'a secret on the command line shows in `ps` to every local user';

export const nodeTokenSettings = {
  nodeToken: {
    flag: 'node-token',
    env: 'PORTCULLIS_NODE_TOKEN',
    description: 'shared secret data-plane nodes present to the control plane (at least 16 characters)',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    envOnly: `${ARGV_SECRET}; set PORTCULLIS_NODE_TOKEN or give --node-token-file <file>`,
  },
  nodeTokenFile: {
    flag: 'node-token-file',
    env: 'PORTCULLIS_NODE_TOKEN_FILE',
    description:
      'file holding the node token (e.g. a mounted secret; surrounding whitespace ignored), instead of ' +
      'PORTCULLIS_NODE_TOKEN',
    schema: z.string().min(1).optional(),
  },
} satisfies OptionTable;

/** Reads a secret file given by `flag`, trimmed; errors name the flag and the fix. */
function readSecretFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `--${flag}: cannot read ${path} (${errorMessage(error)})`);
  }
  if (text.length === 0) throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `--${flag}: ${path} is empty`);
  return text;
}

/**
 * A secret given in its environment variable (`env`) or in a file (`--<fileFlag>`), not both; undefined when
 * neither is. `what` names the secret in the error.
 */
export function tokenSetting(
  token: string | undefined,
  file: string | undefined,
  names: { readonly env: string; readonly fileFlag: string; readonly what: string },
): string | undefined {
  if (token !== undefined && file !== undefined) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      `${names.env} and --${names.fileFlag} are both set; give the ${names.what} one way`,
    );
  }
  return file === undefined ? token : readSecretFile(file, names.fileFlag);
}

/**
 * The node token from PORTCULLIS_NODE_TOKEN or --node-token-file (not both); undefined when neither
 * is given and `required` is false (generated in dev, or nodes authenticated by certificate).
 */
export function readNodeToken(
  settings: ParsedOptions<typeof nodeTokenSettings>,
  required: boolean,
): string | undefined {
  const token = tokenSetting(settings.nodeToken, settings.nodeTokenFile, {
    env: 'PORTCULLIS_NODE_TOKEN',
    fileFlag: 'node-token-file',
    what: 'node token',
  });
  if (token !== undefined && token.length < 16)
    throw new PortcullisError(ErrorCode.BAD_USER_INPUT, '--node-token-file: the token must be at least 16 characters');
  if (token === undefined && required) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      'the node token is required: set PORTCULLIS_NODE_TOKEN or give --node-token-file <file> (or authenticate ' +
        'nodes by certificate: --grpc-tls-client-ca / --control-plane-cert)',
    );
  }
  return token;
}

/** Reads a PEM file named by a flag. */
function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new PortcullisError(ErrorCode.BAD_USER_INPUT, `--${flag}: cannot read ${path} (${errorMessage(error)})`);
  }
}

const pemFile = z.string().min(1, 'must be a file path').optional();

/** The control plane's end: a certificate turns TLS on; a client CA makes it mTLS. */
export const ENV_ONLY_SECRET = ARGV_SECRET;

export const grpcTlsSettings = {
  grpcTlsCert: {
    flag: 'grpc-tls-cert',
    env: 'PORTCULLIS_GRPC_TLS_CERT',
    description: 'PEM certificate (chain) the config stream serves; with --grpc-tls-key it turns TLS on',
    schema: pemFile,
    defaultLabel: 'off: plaintext',
  },
  grpcTlsKey: {
    flag: 'grpc-tls-key',
    env: 'PORTCULLIS_GRPC_TLS_KEY',
    description: 'PEM private key of --grpc-tls-cert',
    schema: pemFile,
  },
  grpcTlsClientCa: {
    flag: 'grpc-tls-client-ca',
    env: 'PORTCULLIS_GRPC_TLS_CLIENT_CA',
    description:
      'mTLS: PEM CA bundle; only nodes presenting a client certificate it signed may connect (the node token is ' +
      'then optional)',
    schema: pemFile,
  },
} satisfies OptionTable;

export function readGrpcTls(settings: ParsedOptions<typeof grpcTlsSettings>): GrpcTls | undefined {
  const { grpcTlsCert, grpcTlsKey, grpcTlsClientCa } = settings;
  if (grpcTlsCert === undefined && grpcTlsKey === undefined) {
    if (grpcTlsClientCa !== undefined)
      throw new PortcullisError(
        ErrorCode.BAD_USER_INPUT,
        '--grpc-tls-client-ca needs TLS: give --grpc-tls-cert and --grpc-tls-key too',
      );
    return undefined;
  }
  if (grpcTlsCert === undefined || grpcTlsKey === undefined) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      '--grpc-tls-cert and --grpc-tls-key go together: give both, or neither for plaintext',
    );
  }
  return {
    certChain: readPem(grpcTlsCert, 'grpc-tls-cert'),
    privateKey: readPem(grpcTlsKey, 'grpc-tls-key'),
    ...(grpcTlsClientCa === undefined ? {} : { clientCa: readPem(grpcTlsClientCa, 'grpc-tls-client-ca') }),
  };
}

const milliseconds = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);

/** A node's end: where the control plane is, how to trust it, and how fast to come back. */
export const controlPlaneConnectionSettings = {
  controlPlane: {
    flag: 'control-plane',
    env: 'PORTCULLIS_CONTROL_PLANE',
    description: 'host:port of the control plane gRPC config stream; comma-separated replicas to fail over between',
    schema: listOption()
      .pipe(
        z
          .array(z.string().regex(/^[^\s:,]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/, 'each address must be host:port'))
          .min(1, 'give at least one host:port'),
      )
      .default(['127.0.0.1:4001']),
    defaultLabel: '127.0.0.1:4001',
  },
  controlPlaneTls: {
    flag: 'control-plane-tls',
    env: 'PORTCULLIS_CONTROL_PLANE_TLS',
    description:
      'on: the config stream uses TLS (verified against --control-plane-ca, else the system roots); on by itself ' +
      'when a CA or client certificate is given',
    schema: z.enum(['on', 'off']).optional(),
    defaultLabel: 'off',
  },
  controlPlaneCa: {
    flag: 'control-plane-ca',
    env: 'PORTCULLIS_CONTROL_PLANE_CA',
    description: "PEM CA bundle the control plane's certificate must chain to (turns TLS on)",
    schema: pemFile,
  },
  controlPlaneCert: {
    flag: 'control-plane-cert',
    env: 'PORTCULLIS_CONTROL_PLANE_CERT',
    description: "mTLS: this node's PEM client certificate (chain), with --control-plane-key (turns TLS on)",
    schema: pemFile,
  },
  controlPlaneKey: {
    flag: 'control-plane-key',
    env: 'PORTCULLIS_CONTROL_PLANE_KEY',
    description: 'PEM private key of --control-plane-cert',
    schema: pemFile,
  },
  controlPlaneServerName: {
    flag: 'control-plane-server-name',
    env: 'PORTCULLIS_CONTROL_PLANE_SERVER_NAME',
    description: "name expected in the control plane's certificate when it differs from the host in --control-plane",
    schema: z.string().min(1).optional(),
  },
  controlPlaneReconnectMinMs: {
    flag: 'control-plane-reconnect-min-ms',
    env: 'PORTCULLIS_CONTROL_PLANE_RECONNECT_MIN_MS',
    description: 'first wait before reconnecting to the control plane (and between replicas)',
    schema: milliseconds(DEFAULT_RECONNECT.initialMs, 10, 60_000),
    defaultLabel: String(DEFAULT_RECONNECT.initialMs),
  },
  controlPlaneReconnectMaxMs: {
    flag: 'control-plane-reconnect-max-ms',
    env: 'PORTCULLIS_CONTROL_PLANE_RECONNECT_MAX_MS',
    description: 'longest wait between reconnect attempts: a returning control plane is found within about this long',
    schema: milliseconds(DEFAULT_RECONNECT.maxMs, 10, 600_000),
    defaultLabel: String(DEFAULT_RECONNECT.maxMs),
  },
} satisfies OptionTable;

export type ControlPlaneConnection = Pick<
  DataPlaneOptions,
  'controlPlaneAddress' | 'controlPlaneFallbacks' | 'controlPlaneTls' | 'controlPlaneReconnect' | 'nodeToken'
>;

/** A node's connection to the control plane from its settings (the node token read separately). */
export function readControlPlaneConnection(
  settings: ParsedOptions<typeof controlPlaneConnectionSettings>,
  nodeToken: string | undefined,
): ControlPlaneConnection {
  const { controlPlaneCa, controlPlaneCert, controlPlaneKey, controlPlaneServerName } = settings;
  if ((controlPlaneCert === undefined) !== (controlPlaneKey === undefined)) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      '--control-plane-cert and --control-plane-key go together: give both, or neither',
    );
  }
  if (settings.controlPlaneReconnectMaxMs < settings.controlPlaneReconnectMinMs) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      `--control-plane-reconnect-max-ms (${settings.controlPlaneReconnectMaxMs}) must be at least ` +
        `--control-plane-reconnect-min-ms (${settings.controlPlaneReconnectMinMs})`,
    );
  }
  const wantsTls = controlPlaneCa !== undefined || controlPlaneCert !== undefined;
  if (settings.controlPlaneTls === 'off' && wantsTls) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      '--control-plane-tls off contradicts --control-plane-ca / --control-plane-cert; drop one',
    );
  }
  const tls = settings.controlPlaneTls === 'on' || wantsTls;
  if (!tls && controlPlaneServerName !== undefined)
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      '--control-plane-server-name needs TLS (--control-plane-ca or --control-plane-tls on)',
    );
  const [first, ...fallbacks] = settings.controlPlane;
  return {
    controlPlaneAddress: first!,
    controlPlaneFallbacks: fallbacks,
    controlPlaneTls: tls
      ? {
          ...(controlPlaneCa === undefined ? {} : { ca: readPem(controlPlaneCa, 'control-plane-ca') }),
          ...(controlPlaneCert === undefined
            ? {}
            : {
                cert: readPem(controlPlaneCert, 'control-plane-cert'),
                key: readPem(controlPlaneKey!, 'control-plane-key'),
              }),
          ...(controlPlaneServerName === undefined ? {} : { serverName: controlPlaneServerName }),
        }
      : undefined,
    controlPlaneReconnect: {
      initialMs: settings.controlPlaneReconnectMinMs,
      maxMs: settings.controlPlaneReconnectMaxMs,
    },
    nodeToken,
  };
}
