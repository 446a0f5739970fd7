import type { CallOutcome } from './run-calls.ts';

/** One open MCP session that can make tool calls; what each load driver provides. */
export interface Driver {
  /** Pid of the server when the driver spawned it (stdio), for CPU sampling by the parent. */
  readonly serverPid?: number;
  readonly protocolVersion?: string;
  call(seq: number): Promise<CallOutcome>;
  close(): Promise<void>;
}

export const CLIENT_INFO = { name: 'portcullis-bench', version: '0.1.0' };
