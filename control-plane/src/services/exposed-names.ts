import type { EntityManager } from 'typeorm';

/** The name agents see for an upstream's tool (or prompt): `<upstream>__<name>`, or `<name>` when unprefixed. */
export function exposedName(upstreamName: string, name: string, unprefixed: boolean): string {
  return unprefixed ? name : `${upstreamName}__${name}`;
}

interface ListedTool {
  upstream_id: string;
  upstream_name: string;
  expose_unprefixed: boolean;
  name: string;
}

export interface NameCollision {
  /** The exposed name two upstreams both claim. */
  name: string;
  /** The other upstream claiming it. */
  otherUpstream: string;
}

async function listedTools(manager: EntityManager): Promise<ListedTool[]> {
  return manager.query(
    `SELECT t.upstream_id, u.name AS upstream_name, u.expose_unprefixed, t.name
     FROM tools t JOIN upstreams u ON u.id = t.upstream_id WHERE t.listed ORDER BY u.created_at, u.name, t.name`,
  );
}

/**
 * The exposed names upstream `upstreamId` would share with other upstreams if its names were
 * exposed `unprefixed` (or not), judged by the catalog nodes last reported.
 */
export async function collisionsOf(manager: EntityManager, upstream: { id: string; name: string }, unprefixed: boolean): Promise<NameCollision[]> {
  const tools = await listedTools(manager);
  const others = new Map<string, string>();
  for (const tool of tools) {
    if (tool.upstream_id === upstream.id) continue;
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    if (!others.has(name)) others.set(name, tool.upstream_name);
  }
  const collisions: NameCollision[] = [];
  for (const tool of tools) {
    if (tool.upstream_id !== upstream.id) continue;
    const name = exposedName(upstream.name, tool.name, unprefixed);
    const other = others.get(name);
    if (other !== undefined) collisions.push({ name, otherUpstream: other });
  }
  return collisions;
}

export function describeCollisions(collisions: readonly NameCollision[]): string {
  const shown = collisions.slice(0, 10).map((c) => `"${c.name}" (also upstream "${c.otherUpstream}")`);
  return shown.join(', ') + (collisions.length > 10 ? ` and ${collisions.length - 10} more` : '');
}

/**
 * Every unprefixed upstream's names that another upstream also exposes, judged by the catalogs
 * nodes last reported (computed when asked, so it is never stale). Which side loses a name is
 * decided as nodes decide it: a prefixed name wins over an unprefixed one, and between two
 * unprefixed upstreams the first in snapshot order (created first) keeps it. A collision is charged
 * to the upstream that loses the name.
 */
export async function nameCollisions(manager: EntityManager): Promise<Map<string, NameCollision[]>> {
  const tools = await listedTools(manager);
  const order = new Map<string, number>();
  const claims = new Map<string, Array<{ id: string; name: string; unprefixed: boolean }>>();
  for (const tool of tools) {
    if (!order.has(tool.upstream_id)) order.set(tool.upstream_id, order.size);
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    const list = claims.get(name) ?? [];
    if (!list.some((claim) => claim.id === tool.upstream_id)) list.push({ id: tool.upstream_id, name: tool.upstream_name, unprefixed: tool.expose_unprefixed });
    claims.set(name, list);
  }
  const problems = new Map<string, NameCollision[]>();
  for (const tool of tools) {
    if (!tool.expose_unprefixed) continue;
    const rank = order.get(tool.upstream_id)!;
    const winner = (claims.get(tool.name) ?? []).find(
      (claim) => claim.id !== tool.upstream_id && (!claim.unprefixed || order.get(claim.id)! < rank),
    );
    if (!winner) continue;
    const list = problems.get(tool.upstream_id) ?? [];
    list.push({ name: tool.name, otherUpstream: winner.name });
    problems.set(tool.upstream_id, list);
  }
  return problems;
}

/** The operator-facing description of an upstream's collisions. */
export function collisionError(collisions: readonly NameCollision[]): string {
  return `unprefixed tool names collide with names other upstreams expose: ${describeCollisions(collisions)}; nodes do not expose these tools of this upstream. Rename them upstream, or set exposeUnprefixed: false`;
}
