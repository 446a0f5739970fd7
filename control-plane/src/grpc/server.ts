import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ConfigStreamService } from './config-service.ts';
import { configServiceDefinition } from './config-service.ts';
import { listenError } from '../listen-error.ts';

export interface GrpcServerHandle {
  /** host:port actually bound. */
  readonly address: string;
  close(): Promise<void>;
}

/** Serves the ConfigService on host:port (0 = OS-assigned), insecure credentials. */
export async function startGrpcServer(service: ConfigStreamService, host: string, port: number): Promise<GrpcServerHandle> {
  const server = new Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 });
  server.addService(configServiceDefinition, service.implementation);
  const bindHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${port}`, ServerCredentials.createInsecure(), (error, actualPort) =>
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
