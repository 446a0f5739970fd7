import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type pg from 'pg';

/**
 * The PostgreSQL backends serving a process's connections, found through its TCP sockets: their local ports
 * are the backends' `client_port`. Only where the server runs on this machine, in this pid namespace (a
 * backend's pid must be a live `postgres` process here); elsewhere none. Linux only, as cpu.ts.
 */
export async function postgresBackendsOf(client: pg.Client, pid: number): Promise<number[]> {
  const ports = localPorts(pid);
  if (ports.length === 0) return [];
  const result = await client.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[]) AND backend_type = 'client backend'`,
    [ports],
  );
  return result.rows.map((row) => row.pid).filter(isPostgres);
}

function isPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return false;
  }
}

/** The local ports of the TCP sockets `pid` holds open. */
function localPorts(pid: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (socket) inodes.add(socket[1]!);
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`; the address is HEX:PORT.
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && inodes.has(fields[9]!)) ports.push(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}
