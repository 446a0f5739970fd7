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

/**
 * The tools of enabled upstreams as nodes last reported them, in snapshot order (the order nodes
 * merge catalogs in). A disabled upstream has no connection on any node, so it claims no name.
 */
async function listedTools(manager: EntityManager): Promise<ListedTool[]> {
  return manager.query(
    `SELECT t.upstream_id, u.name AS upstream_name, u.expose_unprefixed, t.name
     FROM tools t JOIN upstreams u ON u.id = t.upstream_id WHERE t.listed AND u.enabled
     ORDER BY u.created_at, u.name, t.name`,
  );
}

/**
 * Serializes the changes that can make two upstreams claim one exposed name (exposing names
 * unprefixed, enabling an upstream), so two such changes cannot each pass the check alone.
 */
export async function lockExposedNames(manager: EntityManager): Promise<void> {
  await manager.query(`SELECT pg_advisory_xact_lock(hashtext('portcullis.exposed-names'))`);
}

/**
 * The exposed names upstream `upstreamId` would share with other (enabled) upstreams if its names
 * were exposed `unprefixed` (or not) and it were enabled, judged by the catalog nodes last
 * reported. Its own tools are read whether it is enabled or not.
 */
export async function collisionsOf(
  manager: EntityManager,
  upstream: { id: string; name: string },
  unprefixed: boolean,
): Promise<NameCollision[]> {
  const tools = await listedTools(manager);
  const own: Array<{ name: string }> = await manager.query(
    `SELECT name FROM tools WHERE upstream_id = $1 AND listed ORDER BY name`,
    [upstream.id],
  );
  const others = new Map<string, string>();
  for (const tool of tools) {
    if (tool.upstream_id === upstream.id) continue;
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    if (!others.has(name)) others.set(name, tool.upstream_name);
  }
  const collisions: NameCollision[] = [];
  for (const tool of own) {
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
 * Every enabled upstream's exposed names that an enabled upstream earlier in snapshot order also
 * exposes, judged by the catalogs nodes last reported (computed when asked, so it is never stale).
 * Which side loses a name is decided as nodes decide it (mergeCatalogs): the upstream first in
 * snapshot order (created first) keeps it, and the other's tool is not exposed. The collision is
 * charged to the upstream that loses the name. Only an unprefixed upstream can take a name another
 * one exposes (`<name>__<tool>` is unique to its upstream otherwise).
 */
export async function nameCollisions(manager: EntityManager): Promise<Map<string, NameCollision[]>> {
  const tools = await listedTools(manager);
  const order = new Map<string, number>();
  const claims = new Map<string, Array<{ id: string; name: string; unprefixed: boolean }>>();
  for (const tool of tools) {
    if (!order.has(tool.upstream_id)) order.set(tool.upstream_id, order.size);
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    const list = claims.get(name) ?? [];
    if (!list.some((claim) => claim.id === tool.upstream_id))
      list.push({ id: tool.upstream_id, name: tool.upstream_name, unprefixed: tool.expose_unprefixed });
    claims.set(name, list);
  }
  const problems = new Map<string, NameCollision[]>();
  for (const tool of tools) {
    const rank = order.get(tool.upstream_id)!;
    const name = exposedName(tool.upstream_name, tool.name, tool.expose_unprefixed);
    const winner = (claims.get(name) ?? []).find(
      (claim) => claim.id !== tool.upstream_id && order.get(claim.id)! < rank,
    );
    if (!winner) continue;
    const list = problems.get(tool.upstream_id) ?? [];
    list.push({ name, otherUpstream: winner.name });
    problems.set(tool.upstream_id, list);
  }
  return problems;
}

/** The operator-facing description of an upstream's collisions. */
export function collisionError(collisions: readonly NameCollision[]): string {
  return (
    `tool names collide with names upstreams created earlier expose: ${describeCollisions(collisions)}; nodes ` +
    `do not expose these tools of this upstream (the upstream created first keeps a name). Rename them upstream, ` +
    `set exposeUnprefixed: false on the unprefixed one, or disable one of the two`
  );
}
