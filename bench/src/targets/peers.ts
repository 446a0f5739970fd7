import { resolve } from 'node:path';
import { packageDir } from '../packages.ts';
import { LOOPBACK_PRELOAD, ManagedProcess, freePort, waitForPort } from '../processes.ts';
import { everythingStdio, type HttpServer } from './upstream.ts';

/**
 * The TypeScript proxies a user might pick instead of Portcullis, installed from npm as dev
 * dependencies, each exposing server-everything's stdio server as Streamable HTTP.
 *
 * Neither can front a Streamable HTTP upstream with a Streamable HTTP endpoint: mcp-proxy only spawns
 * stdio servers, and supergateway converts Streamable HTTP only to stdio. So the peers have stdio rows only.
 */

export interface Peer {
  readonly name: 'mcp-proxy' | 'supergateway';
  /** How it was started, for the report. */
  readonly mode: string;
  start(): Promise<HttpServer>;
}

/** mcp-proxy: `mcp-proxy --server stream -- <stdio command>`; defaults otherwise (stateful, event store on). */
export const mcpProxy: Peer = {
  name: 'mcp-proxy',
  mode: 'stdio upstream, --server stream (stateful sessions, default event store)',
  async start() {
    const port = await freePort();
    const bin = resolve(packageDir('mcp-proxy'), 'dist/bin/mcp-proxy.mjs');
    const upstream = everythingStdio();
    const proc = new ManagedProcess('mcp-proxy', process.execPath, [
      bin,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--server',
      'stream',
      '--',
      upstream.command,
      ...upstream.args,
    ]);
    await waitForPort(port, proc);
    return { proc, url: `http://127.0.0.1:${port}/mcp` };
  },
};

/**
 * supergateway: `--stdio <cmd> --outputTransport streamableHttp --stateful`. Its default stateless mode
 * spawns a new stdio server per request, which no one would put load on; per-message logging is off.
 */
export const supergateway: Peer = {
  name: 'supergateway',
  mode: 'stdio upstream, --outputTransport streamableHttp --stateful --logLevel none',
  async start() {
    const port = await freePort();
    const bin = resolve(packageDir('supergateway'), 'dist/index.js');
    const upstream = everythingStdio();
    const proc = new ManagedProcess('supergateway', process.execPath, [
      '--import',
      LOOPBACK_PRELOAD,
      bin,
      '--stdio',
      [upstream.command, ...upstream.args].join(' '),
      '--outputTransport',
      'streamableHttp',
      '--stateful',
      '--port',
      String(port),
      '--logLevel',
      'none',
    ]);
    await waitForPort(port, proc);
    return { proc, url: `http://127.0.0.1:${port}/mcp` };
  },
};

export const PEERS: readonly Peer[] = [mcpProxy, supergateway];

/** A peer that started, with the server-everything it fronts. */
export interface RunningPeer {
  readonly peer: Peer;
  readonly server: HttpServer;
}

/**
 * Starts every peer (one after the other) before any row, so that their rows can take turns with the
 * direct and gateway rows; a peer that fails to start is reported through `skipped` and left out.
 */
export async function startPeers(skipped: (peer: Peer, reason: string) => void): Promise<RunningPeer[]> {
  const running: RunningPeer[] = [];
  for (const peer of PEERS) {
    try {
      running.push({ peer, server: await peer.start() });
    } catch (error) {
      skipped(peer, error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
    }
  }
  return running;
}

export const PEERS_FRONTING_HTTP_NOTE =
  'peers in front of the Streamable HTTP upstream: not measured, neither supports it (mcp-proxy spawns stdio ' +
  'servers only; supergateway turns Streamable HTTP into stdio, not into Streamable HTTP)';
