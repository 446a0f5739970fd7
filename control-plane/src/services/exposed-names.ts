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
 * nodes last reported (computed when asked, so it is never stale). Prefixed names are unique by
 * construction, so a collision always involves an unprefixed upstream; it is charged to that one
 * (nodes hide its colliding tools).
 */
export async function nameCollisions(manager: EntityManager): Promise<Map<string, NameCollision[]>> {
  const tools = await listedTools(manager);
  const claims = new Map<string, Array<{ id: string; name: string }>>();
  for (const tool of tools) {
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    const list = claims.get(name) ?? [];
    if (!list.some((claim) => claim.id === tool.upstream_id)) list.push({ id: tool.upstream_id, name: tool.upstream_name });
    claims.set(name, list);
  }
  const problems = new Map<string, NameCollision[]>();
  for (const tool of tools) {
    if (!tool.expose_unprefixed) continue;
    const others = (claims.get(tool.name) ?? []).filter((claim) => claim.id !== tool.upstream_id);
    if (others.length === 0) continue;
    const list = problems.get(tool.upstream_id) ?? [];
    list.push({ name: tool.name, otherUpstream: others[0]!.name });
    problems.set(tool.upstream_id, list);
  }
  return problems;
}

/** The operator-facing description of an upstream's collisions. */
export function collisionError(collisions: readonly NameCollision[]): string {
  return `unprefixed tool names collide with names other upstreams expose: ${describeCollisions(collisions)}; nodes hide the colliding tools of this upstream. Rename them upstream, or set exposeUnprefixed: false`;
}
