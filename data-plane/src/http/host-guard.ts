import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { LRUCache } from 'lru-cache';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { sendRpcError } from './respond.ts';

/** One accepted `Host`: a host name (lower case; IPv6 in brackets) and optionally a port (absent: any port). */
export interface AllowedHost {
  readonly hostname: string;
  readonly port?: string;
}

/** What a node listening on a loopback address accepts when no list is given: the loopback names, any port. */
export const LOOPBACK_HOSTS: readonly AllowedHost[] = Object.freeze([
  { hostname: 'localhost' },
  { hostname: '127.0.0.1' },
  { hostname: '[::1]' },
]);

const HOST_PORT = /^(\[[0-9a-f:.]+\]|[^\s:[\]/]+)(?::(\d{1,5}))?$/i;

/** Parses `host[:port]` (IPv6 as `[::1]` or `[::1]:8080`); undefined when malformed. */
export function parseHostPort(value: string): AllowedHost | undefined {
  const match = HOST_PORT.exec(value.trim());
  if (!match) return undefined;
  const hostname = match[1]!.toLowerCase();
  return match[2] === undefined ? { hostname } : { hostname, port: String(Number(match[2])) };
}

/** Parses the `--allowed-hosts` list (comma-separated `host[:port]`); throws naming the bad entry. */
export function parseAllowedHosts(list: string): AllowedHost[] {
  const entries = list
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  return entries.map((entry) => {
    const parsed = parseHostPort(entry);
    if (parsed === undefined) throw new TypeError(`"${entry}" is not a host or host:port`);
    return parsed;
  });
}

/** Whether a listen address only accepts connections from this machine. */
export function isLoopbackAddress(address: string): boolean {
  const host = address.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  if (host.startsWith('::ffff:')) return isLoopbackAddress(host.slice(7));
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * The hosts a node accepts: the given list; else, listening on a loopback address, the loopback
 * names; else undefined (no check: a node on a routable address is reached by names it cannot know).
 */
export function effectiveAllowedHosts(
  listenHost: string,
  allowedHosts: readonly AllowedHost[] | undefined,
): readonly AllowedHost[] | undefined {
  if (allowedHosts !== undefined && allowedHosts.length > 0) return allowedHosts;
  return isLoopbackAddress(listenHost) ? LOOPBACK_HOSTS : undefined;
}

function allowed(list: readonly AllowedHost[], host: AllowedHost): boolean {
  return list.some(
    (entry) => entry.hostname === host.hostname && (entry.port === undefined || entry.port === host.port),
  );
}

/** `Origin` as host and port (the scheme's default port when none is written); undefined when opaque or malformed. */
function originHost(origin: string): AllowedHost | undefined {
  if (!URL.canParse(origin)) return undefined;
  const url = new URL(origin);
  if (url.host === '') return undefined;
  const port =
    url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : url.protocol === 'http:' ? '80' : undefined;
  return port === undefined ? { hostname: url.hostname.toLowerCase() } : { hostname: url.hostname.toLowerCase(), port };
}

function refuse(res: ServerResponse, header: 'Host' | 'Origin', value: string | undefined): void {
  const shown = value === undefined ? '(none)' : JSON.stringify(value.slice(0, 200));
  sendRpcError(
    res,
    403,
    RpcErrorCode.Forbidden,
    `Forbidden: the ${header} header ${shown} is not an allowed host of this node (DNS-rebinding protection); to ` +
      `accept it, add it to --allowed-hosts (PORTCULLIS_ALLOWED_HOSTS)`,
    { data: { header } },
  );
}

/**
 * `Host` values already accepted, per list: an agent sends the same one on every request, so the
 * parse is paid once. Only accepted values are kept, and at most MAX_REMEMBERED_HOSTS of them.
 */
const acceptedHosts = new WeakMap<readonly AllowedHost[], LRUCache<string, true>>();
const MAX_REMEMBERED_HOSTS = 64;

function hostAllowed(list: readonly AllowedHost[], hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return false;
  let accepted = acceptedHosts.get(list);
  if (accepted?.has(hostHeader)) return true;
  const host = parseHostPort(hostHeader);
  if (host === undefined || !allowed(list, { hostname: host.hostname, port: host.port ?? '80' })) return false;
  if (accepted === undefined) acceptedHosts.set(list, (accepted = new LRUCache({ max: MAX_REMEMBERED_HOSTS })));
  accepted.set(hostHeader, true);
  return true;
}

/**
 * DNS-rebinding protection for the MCP endpoints: the `Host` header must name an allowed host, and
 * an `Origin` header, when present, too. Answers 403 itself and returns false when refused.
 */
export function checkHost(
  list: readonly AllowedHost[] | undefined,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  if (list === undefined) return true;
  const hostHeader = req.headers.host;
  if (!hostAllowed(list, hostHeader)) {
    refuse(res, 'Host', hostHeader);
    return false;
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const from = originHost(origin);
    if (from === undefined || !allowed(list, from)) {
      refuse(res, 'Origin', origin);
      return false;
    }
  }
  return true;
}
