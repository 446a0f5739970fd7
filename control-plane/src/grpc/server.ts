import { createSecureContext } from 'node:tls';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ConfigStreamService } from './config-service.ts';
import { configServiceDefinition } from './config-service.ts';
import { ErrorCode, PortcullisError, errorMessage } from '../../../common/src/index.ts';
import { listenError } from '../listen-error.ts';

/** TLS of the config stream, as PEM bytes. */
export interface GrpcTls {
  /** The control plane's certificate chain and its private key. */
  readonly certChain: Buffer;
  readonly privateKey: Buffer;
  /**
   * mTLS: a node must present a client certificate chaining to this CA bundle, or the TLS handshake
   * fails before any request is read.
   */
  readonly clientCa?: Buffer;
}

export interface GrpcServerHandle {
  /** host:port actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

function serverCredentials(tls: GrpcTls | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  // grpc-js reads the PEM only when binding, and reports a bad one as a listen failure: check it here.
  createSecureContext({
    cert: tls.certChain,
    key: tls.privateKey,
    ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa }),
  });
  return ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ cert_chain: tls.certChain, private_key: tls.privateKey }],
    tls.clientCa !== undefined,
  );
}

/** Serves the ConfigService on host:port (0 = OS-assigned), over TLS when `tls` is given, else plaintext. */
export async function startGrpcServer(
  service: ConfigStreamService,
  host: string,
  port: number,
  tls?: GrpcTls,
): Promise<GrpcServerHandle> {
  const server = new Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(configServiceDefinition, service.implementation);
  const bindHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  let credentials: ServerCredentials;
  try {
    credentials = serverCredentials(tls);
  } catch (error) {
    // A key that does not match its certificate, or PEM that is not one.
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `grpcTls: the config stream's certificate, key or client CA is not usable (${errorMessage(error)}); check ` +
        `--grpc-tls-cert, --grpc-tls-key and --grpc-tls-client-ca`,
      { field: 'grpcTls' },
      { cause: error },
    );
  }
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${port}`, credentials, (error, actualPort) =>
      error ? reject(listenError(error, 'grpcHost/grpcPort', `${bindHost}:${port}`)) : resolve(actualPort),
    );
  }).catch((error: unknown) => {
    server.forceShutdown();
    throw error;
  });
  let closing: Promise<void> | undefined;
  return {
    address: `${bindHost}:${boundPort}`,
    close() {
      // Config streams never end on their own: cut them, then let the service finish its bookkeeping.
      closing ??= (async () => {
        server.forceShutdown();
        await service.drain();
      })();
      return closing;
    },
  };
}
