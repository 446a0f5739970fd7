/**
 * The transport matrix (issue 5 item 6): behaviours that must hold on every pair of downstream
 * agent transport and upstream transport, run by test/e2e/protocol-transport-matrix.e2e.test.ts
 * against real servers. A (requirement, cell) pair either runs or is declared exempt here, with the
 * protocol reason; test/unit/transport-matrix.test.ts and the e2e file's last test fail otherwise.
 *
 * Each requirement names the DN-/UP- ids it exercises; the generated test names carry them, so the
 * downstream and upstream requirement meta-tests count the matrix's runs (`matrixTestNames`).
 */

/** How the agent reaches the gateway. */
export const DOWNSTREAMS = {
  'v1-http': 'SDK v1 client, Streamable HTTP, 2025-11-25',
  'v2-http': 'SDK v2 client pinned to 2026-07-28, Streamable HTTP',
  'v1-sse': 'SDK v1 client, legacy HTTP+SSE',
} as const;
export type DownstreamId = keyof typeof DOWNSTREAMS;

/** How the gateway reaches the upstream (its name in the gateway is the id without the dash). */
export const UPSTREAMS = {
  'ev-stdio': { server: 'everything', transport: 'stdio', text: 'server-everything over stdio (2025 era)' },
  'ev-http': { server: 'everything', transport: 'http', text: 'server-everything over Streamable HTTP (2025 era)' },
  'ev-sse': { server: 'everything', transport: 'sse', text: 'server-everything over legacy HTTP+SSE (2025 era)' },
  'conf-http': {
    server: 'conformance',
    transport: 'http',
    text: 'the conformance upstream over Streamable HTTP (2026-07-28)',
  },
  'conf-stdio': { server: 'conformance', transport: 'stdio', text: 'the conformance upstream over stdio (2026-07-28)' },
} as const;
export type UpstreamId = keyof typeof UPSTREAMS;

export interface MatrixCell {
  readonly downstream: DownstreamId;
  readonly upstream: UpstreamId;
}

/** The upstream's name in the gateway (tool prefix): `ev-stdio` → `evstdio`. */
export function upstreamName(upstream: UpstreamId): string {
  return upstream.replace('-', '');
}

const UPSTREAM_CONNECT = { stdio: 'UP-STDIO-CONNECT', http: 'UP-HTTP-CONNECT', sse: 'UP-SSE-CONNECT' } as const;
const UPSTREAM_ERA = { everything: 'UP-ERA-2025', conformance: 'UP-ERA-2026' } as const;

interface MatrixRequirement {
  readonly text: string;
  /** The DN-/UP- ids the run exercises in a cell. */
  readonly ids: (cell: MatrixCell) => readonly string[];
}

export const MATRIX_REQUIREMENTS = {
  'MX-TOOLS-LIST': {
    text: "tools/list shows exactly the key's tools of that upstream, prefixed, as the upstream lists them",
    ids: (c) => [
      'DN-TOOLS-LIST',
      UPSTREAM_CONNECT[UPSTREAMS[c.upstream].transport],
      UPSTREAM_ERA[UPSTREAMS[c.upstream].server],
    ],
  },
  'MX-TOOLS-CALL': {
    text: "tools/call returns the upstream's result unchanged",
    ids: () => ['DN-TOOLS-CALL', 'UP-RELAY-UNCHANGED'],
  },
  'MX-TOOLS-REFUSED': {
    text: 'an unknown tool and a tool outside the allow-list are refused the same way',
    ids: () => ['DN-TOOLS-REFUSED'],
  },
  'MX-PROGRESS': {
    text: "the upstream's progress reaches the agent, in order",
    ids: () => ['DN-PROGRESS', 'UP-RELAY-PROGRESS'],
  },
  'MX-CANCEL': {
    text:
      "the agent's cancellation reaches the upstream: the relayed call is cancelled (the conformance upstream " +
      'reports its handler aborted), the session goes on',
    ids: (c) => [c.downstream === 'v2-http' ? 'DN-CANCEL-DISCONNECT' : 'DN-CANCEL', 'UP-RELAY-CANCEL'],
  },
  'MX-RESOURCES': {
    text: 'resources/list and resources/read, URIs unchanged',
    ids: () => ['DN-RESOURCES-LIST', 'DN-RESOURCES-READ'],
  },
  'MX-TEMPLATES': {
    text: 'resources/templates/list, and a read routed by template',
    ids: () => ['DN-RESOURCES-TEMPLATES-LIST', 'DN-RESOURCES-READ'],
  },
  'MX-PROMPTS': { text: 'prompts/list and prompts/get', ids: () => ['DN-PROMPTS-LIST', 'DN-PROMPTS-GET'] },
  'MX-COMPLETION': { text: 'completion/complete for a prompt argument', ids: () => ['DN-COMPLETION'] },
  'MX-PAGINATION': {
    text: 'tools/list pages across two upstreams with an opaque cursor; an unknown cursor is -32602',
    ids: () => ['DN-PAGINATION'],
  },
  'MX-SERVER-REQUEST': {
    text: "an upstream's elicitation during a call is answered by the agent and the call completes with the answer",
    ids: (c) => [
      c.downstream === 'v2-http'
        ? 'DN-INPUT-REQUIRED'
        : UPSTREAMS[c.upstream].server === 'conformance'
          ? 'DN-INPUT-LEGACY-AGENT'
          : 'DN-SERVER-REQUEST',
      'UP-RELAY-SERVER-REQUEST',
    ],
  },
  'MX-LIST-CHANGED': {
    text:
      "a change of the upstream's lists at run time (a tool's definition, a resource added) reaches the agent " +
      'as list_changed, and the new list shows it',
    ids: (c) => [c.downstream === 'v2-http' ? 'DN-LISTEN' : 'DN-LIST-CHANGED', 'UP-LIST-CHANGED'],
  },
  'MX-KILL-MID-CALL': {
    text:
      'the upstream process killed mid-call: the call fails at once with an isError result naming the ' +
      'upstream; restarted, calls work again',
    ids: (c) =>
      UPSTREAMS[c.upstream].transport === 'stdio'
        ? ['UP-STDIO-KILL-INFLIGHT', 'UP-STDIO-RESTART']
        : ['UP-STDIO-KILL-INFLIGHT', 'UP-HTTP-RECONNECT'],
  },
  'MX-SSE-RESUME': {
    text:
      "the agent's SSE answer stream dropped mid-call is resumed with Last-Event-ID: the rest of the progress " +
      'and the result arrive',
    ids: () => ['DN-SSE-RESUME-POST'],
  },
} as const satisfies Record<string, MatrixRequirement>;
export type MatrixRequirementId = keyof typeof MATRIX_REQUIREMENTS;

/**
 * Cells where a behaviour cannot exist, and why (protocol limits, not missing work). Each entry:
 * the requirement, the cells, the reason.
 */
export const MATRIX_EXEMPTIONS: readonly {
  requirement: MatrixRequirementId;
  downstream: DownstreamId;
  upstream: UpstreamId | '*';
  reason: string;
}[] = [
  {
    requirement: 'MX-SSE-RESUME',
    downstream: 'v2-http',
    upstream: '*',
    reason:
      '2026-07-28 has no GET stream and no Last-Event-ID resumption: a closed connection is the cancellation of ' +
      'the request (DN-CANCEL-DISCONNECT)',
  },
  {
    requirement: 'MX-SSE-RESUME',
    downstream: 'v1-sse',
    upstream: '*',
    reason: 'the legacy HTTP+SSE transport has no event ids and no resumption: a dropped GET /sse ends the session',
  },
];

export function matrixCells(): MatrixCell[] {
  return (Object.keys(DOWNSTREAMS) as DownstreamId[]).flatMap((downstream) =>
    (Object.keys(UPSTREAMS) as UpstreamId[]).map((upstream) => ({ downstream, upstream })),
  );
}

export function exemption(requirement: MatrixRequirementId, cell: MatrixCell): string | undefined {
  return MATRIX_EXEMPTIONS.find(
    (e) =>
      e.requirement === requirement &&
      e.downstream === cell.downstream &&
      (e.upstream === '*' || e.upstream === cell.upstream),
  )?.reason;
}

export interface PlannedRun {
  readonly requirement: MatrixRequirementId;
  readonly cell: MatrixCell;
  /** The test's name: the MX id, the DN-/UP- ids it exercises, the cell. */
  readonly name: string;
}

/** Every (requirement, cell) that must run: all pairs but the declared exemptions. */
export function matrixPlan(): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (const [requirement, { text, ids }] of Object.entries(MATRIX_REQUIREMENTS) as [
    MatrixRequirementId,
    MatrixRequirement,
  ][]) {
    for (const cell of matrixCells()) {
      if (exemption(requirement, cell) !== undefined) continue;
      runs.push({
        requirement,
        cell,
        name: `${requirement} ${ids(cell).join(' ')} [${cell.downstream} → ${cell.upstream}]: ${text}`,
      });
    }
  }
  return runs;
}

/** The names of the matrix's tests, for the requirement meta-tests. */
export function matrixTestNames(): string[] {
  return matrixPlan().map((run) => run.name);
}

/** `MX-…` and the cell, the stable key of a run. */
export function runKey(requirement: MatrixRequirementId, cell: MatrixCell): string {
  return `${requirement} ${cell.downstream} ${cell.upstream}`;
}
