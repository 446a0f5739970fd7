import { PortcullisError, ErrorCode, errorMessage } from '../../common/src/index.ts';

/** Turns a failed listen into an error naming the option and the fix. */
export function listenError(error: unknown, field: string, address: string): PortcullisError {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const reason =
    code === 'EADDRINUSE'
      ? 'is already in use'
      : code === 'EADDRNOTAVAIL'
        ? 'is not an address of this machine'
        : `cannot be listened on (${errorMessage(error)})`;
  return new PortcullisError(
    ErrorCode.BAD_CONFIG,
    `${field}: ${address} ${reason}; choose another address or port (0 lets the OS pick one)`,
    { field },
    { cause: error },
  );
}
