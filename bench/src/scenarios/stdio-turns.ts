import type { RunningPeer } from '../targets/peers.ts';
import { ECHO, everythingStdioTarget } from '../targets/upstream.ts';
import type { MeasureTarget } from './measure.ts';

/**
 * The targets in front of server-everything over stdio, in the order they take turns: the server
 * itself (spawned by the load process), each peer proxy that started, then the gateway's stdio
 * upstream. Measured together by `measureInTurns`, so a slow spell of the machine falls on all of
 * them rather than on whichever was measured during it.
 */
export function stdioTurns(peers: readonly RunningPeer[], gatewayTargets: readonly MeasureTarget[]): MeasureTarget[] {
  return [
    { upstream: 'stdio', path: 'direct', load: everythingStdioTarget(), operation: ECHO },
    ...peers.map(({ peer, server }): MeasureTarget => ({
      upstream: 'stdio',
      path: peer.name,
      load: { transport: 'http', url: server.url, headers: {} },
      operation: ECHO,
      pid: server.proc.pid,
    })),
    ...gatewayTargets.filter((target) => target.upstream === 'stdio'),
  ];
}
