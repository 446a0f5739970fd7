import { parseOptions, USAGE } from './options.ts';
import { installCleanupHooks, killAllSync } from './processes.ts';
import { renderReport } from './report/table.ts';
import { checkTargets } from './report/targets.ts';
import { DEFAULT_RESULTS_FILE, runStealPercent, startContext, writeResults } from './report/json.ts';
import { addRatios, type RoundTripRow, type RunResults } from './results.ts';
import { LoadGenerator } from './load/run-load.ts';
import { measureInTurns, measureTarget, warmUpGateway, type MeasureTarget } from './scenarios/measure.ts';
import { TOOL_COUNTS, directToolsListTargets, gatewayToolsListTargets, seedKeys } from './scenarios/tools-list.ts';
import { FLOOR_PROXY_NOTE, startFloorProxy } from './targets/floor-proxy.ts';
import { PEERS_FRONTING_HTTP_NOTE, startPeers, type RunningPeer } from './targets/peers.ts';
import {
  GatewayUnavailable,
  budgetsSpent,
  portcullisTargets,
  startPortcullis,
  type RunningGateway,
} from './targets/portcullis.ts';
import { measurePropagation, type PropagationRow } from './scenarios/propagation.ts';
import { measureSnapshots } from './scenarios/snapshots.ts';
import { auditIngestTarget, measureAuditIngest, type AuditIngestRow } from './scenarios/audit-ingest.ts';
import { auditRecordTarget, measureAuditRecordStep, type AuditRecordStepRow } from './scenarios/audit-record.ts';
import { auditCostTarget, measureAuditCost, type AuditCostRow } from './scenarios/audit-cost.ts';
import { ECHO, startEverythingHttp, type HttpServer } from './targets/upstream.ts';
import { stdioTurns } from './scenarios/stdio-turns.ts';
import { comparisonTargets, comparisonsFor, compareRows, isAuditRowsTarget } from './report/comparisons.ts';
import { prepareBaseline, type BaselineTree } from './targets/baseline.ts';
import { startExtraGateways, type ExtraGateway } from './targets/variants.ts';
import { measureCodeModeTokens } from './code-mode/section.ts';

/**
 * `npm run bench [-- --quick]`: tool-call round trips to server-everything directly, through the peer
 * proxies and through Portcullis, tools/list with many tools and keys, config propagation to N nodes
 * and snapshot build/apply at 1k–100k keys, in one run on this machine; a table on stdout (progress
 * on stderr) and every figure in bench/results/latest.json. Every process it starts is stopped at the end.
 */

const PATH_ORDER = ['direct', 'floor-proxy', 'portcullis', 'mcp-proxy', 'supergateway'];

async function stopPeers(peers: readonly RunningPeer[]): Promise<void> {
  await Promise.all(peers.map(({ server }) => server.proc.stop().catch(() => {})));
}

/** Gateways started otherwise (variants, a baseline) come right after `portcullis`. */
function pathRank(path: string): number {
  const rank = PATH_ORDER.indexOf(path);
  return rank >= 0 ? rank : PATH_ORDER.indexOf('portcullis') + 0.5;
}

async function stopExtras(extras: readonly ExtraGateway[]): Promise<void> {
  await Promise.all(extras.map(({ running }) => running.stop().catch(() => {})));
}

function sortRows(rows: RoundTripRow[]): RoundTripRow[] {
  return [...rows].sort(
    (a, b) =>
      a.method.localeCompare(b.method) ||
      (a.upstreamTools ?? 0) - (b.upstreamTools ?? 0) ||
      a.upstream.localeCompare(b.upstream) * -1 || // stdio first
      a.driver.localeCompare(b.driver) || // lean, then sdk
      a.concurrency - b.concurrency ||
      pathRank(a.path) - pathRank(b.path) ||
      a.path.localeCompare(b.path),
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  installCleanupHooks();
  const context = startContext(options.profile.quick);
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const results: RunResults = { rows: [], sections: {}, notes: [], targets: [] };
  let propagation: PropagationRow[] | undefined;
  let auditIngest: AuditIngestRow | undefined;
  let auditRecord: AuditRecordStepRow | undefined;
  let auditCost: AuditCostRow | undefined;
  const { machine } = context;
  progress(
    `bench (${options.profile.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ` +
      `${process.version}`,
  );
  if (machine.loadAverage1m > machine.cores * 0.5) {
    results.notes.push(
      `the machine was busy when the run started (1-minute load average ${machine.loadAverage1m.toFixed(2)} on ` +
        `${machine.cores} cores): figures are noisier and lower than on an idle machine`,
    );
  }

  const load = new LoadGenerator();
  const measure = async (target: MeasureTarget, concurrencies?: readonly number[]) => {
    progress(`${target.operation.method}: ${target.upstream} upstream via ${target.path}:`);
    results.rows.push(...(await measureTarget(load, target, options.profile, progress, concurrencies)));
  };

  let httpServer: HttpServer | undefined;
  let peers: RunningPeer[] = [];
  let gateway: RunningGateway | undefined;
  let gatewayMissing: string | undefined;
  let baseline: BaselineTree | undefined;
  let extras: ExtraGateway[] = [];
  const { sections } = options;
  const note = (line: string) => results.notes.push(line);
  try {
    if (sections.has('calls') || sections.has('tools-list')) {
      // stdio upstream: the peers front server-everything over stdio; they stay up until the stdio rows,
      // measured in turns with the direct server and the gateway, are done.
      if (sections.has('calls')) {
        peers = await startPeers((peer, reason) => results.notes.push(`${peer.name} not measured: ${reason}`));
        for (const { peer } of peers) results.notes.push(`${peer.name}: ${peer.mode}`);
      }

      // Streamable HTTP upstream: server-everything stays up, since the gateway's HTTP rows call it too.
      httpServer = await startEverythingHttp();
      const floor = sections.has('calls') ? await startFloorProxy(httpServer.url) : undefined;
      try {
        // Portcullis: the same drivers against one data-plane node with a key, allow-list, audit and metrics.
        if (options.skipGateway) {
          gatewayMissing = 'skipped (--no-gateway)';
        } else {
          try {
            progress('starting portcullis (control plane + one data-plane node)…');
            gateway = await startPortcullis(httpServer.url);
            results.notes.push(
              'portcullis: `portcullis control-plane` (embedded Postgres) and one `portcullis data-plane` node, ' +
                "separate processes; cpu/call is the node's",
            );
          } catch (error) {
            if (!(error instanceof GatewayUnavailable)) throw error;
            gatewayMissing = error.message;
            progress(`gateway not available: ${error.message}`);
          }
        }
        if (sections.has('calls') && floor && gateway && !gatewayMissing) {
          // The baseline commit and the variants: gateways of their own, measured in the same stdio turns.
          if (options.baseline !== undefined) {
            progress(`preparing ${options.baseline} in a temporary worktree…`);
            baseline = prepareBaseline(options.baseline);
          }
          extras = await startExtraGateways(httpServer.url, options.variants, baseline, note, progress);
          for (const { path } of extras)
            note(
              `${path}: a control plane and one data-plane node of its own, with the same upstreams; its stdio rows ` +
                'only',
            );
        }
        if (sections.has('calls') && floor) {
          const gatewayTargets = [
            ...(gateway && !gatewayMissing ? portcullisTargets(gateway.gateway) : []),
            ...extras.flatMap(({ path, running }) =>
              portcullisTargets(running.gateway, path).filter((t) => t.upstream === 'stdio'),
            ),
          ];
          // A freshly started node is not in its steady state (its CPU per call falls over its first tens
          // of thousands of calls): warmed up, then its stdio rows, then the HTTP rows read as ratios.
          await warmUpGateway(load, gatewayTargets, options.profile, progress);
          const passes = options.profile.passes;
          const stdio = stdioTurns(peers, gatewayTargets);
          progress(
            `tools/call: stdio upstream via ${stdio.map((t) => t.path).join(', ')}, taking turns (${passes} ` +
              `pass${passes === 1 ? '' : 'es'}):`,
          );
          results.rows.push(...(await measureInTurns(load, stdio, options.profile, progress)));
          await stopPeers(peers);
          peers = [];
          const limited = extras.find((e) => e.path === 'portcullis (limits on)');
          if (limited) {
            const spent = await budgetsSpent(limited.running.gateway).catch(() => undefined);
            note(
              `portcullis (limits on): ${spent ?? 'unknown'} micro-units spent from the key's budget by the end of ` +
                'its rows (1 a call; nodes report spend within a fraction of a second), so its calls were charged',
            );
          }
          await stopExtras(extras);
          extras = [];
          baseline?.remove();
          const http: MeasureTarget[] = [
            {
              upstream: 'http',
              path: 'direct',
              load: { transport: 'http', url: httpServer.url, headers: {} },
              operation: ECHO,
              pid: httpServer.proc.pid,
            },
            {
              upstream: 'http',
              path: 'floor-proxy',
              load: { transport: 'http', url: floor.url, headers: {} },
              operation: ECHO,
              pid: floor.proc.pid,
            },
            ...gatewayTargets.filter((t) => t.upstream === 'http'),
          ];
          progress(
            `tools/call: http upstream via ${http.map((t) => t.path).join(', ')}, taking turns (${passes} ` +
              `pass${passes === 1 ? '' : 'es'}):`,
          );
          results.rows.push(...(await measureInTurns(load, http, options.profile, progress)));
          results.notes.push(PEERS_FRONTING_HTTP_NOTE, FLOOR_PROXY_NOTE);
          results.notes.push(
            passes === 1
              ? 'stdio and Streamable HTTP rows: the paths in front of each upstream take turns for each driver ' +
                  'and concurrency (stdio: direct, mcp-proxy, supergateway, portcullis; Streamable HTTP: direct, ' +
                  'floor proxy, portcullis), so that their rows are measured close together'
              : `stdio and Streamable HTTP rows: each row's calls in ${passes} passes, the paths in front of each ` +
                  `upstream taking turns (stdio: direct, mcp-proxy, supergateway, portcullis, direct, …; ` +
                  `Streamable HTTP: direct, floor proxy, portcullis, direct, …) so that a slow spell of the ` +
                  `machine falls on all of them; a row is its passes merged (latencies pooled, calls, time and CPU ` +
                  `summed, probe figures weighted by calls)`,
          );
        }
      } finally {
        await floor?.proc.stop();
      }
      if (gatewayMissing) results.notes.push(`gateway not available: ${gatewayMissing} (no Portcullis rows)`);

      // tools/list with 10, 100 and 1,000 upstream tools: direct, then through the gateway with keys seeded.
      if (sections.has('tools-list')) for (const target of directToolsListTargets()) await measure(target, [1]);
      if (sections.has('tools-list') && gateway && !gatewayMissing) {
        try {
          const { seedKeys: wanted, seedBudgetMs } = options.profile;
          progress(`seeding up to ${wanted} virtual keys (at most ${Math.round(seedBudgetMs / 1000)} s)…`);
          const started = Date.now();
          const seeded = wanted > 0 ? await seedKeys(gateway.gateway, wanted, seedBudgetMs) : 0;
          const keys = seeded + 1 + TOOL_COUNTS.length; // + the round-trip key + one key per tool count
          results.notes.push(
            `tools/list via portcullis measured with ${keys} virtual keys configured (${seeded} seeded through ` +
              `GraphQL in ${((Date.now() - started) / 1000).toFixed(1)} ` +
              `s${seeded < wanted ? `; the issue asks for ${wanted}: the seeding budget ran out` : ''})`,
          );
          for (const target of await gatewayToolsListTargets(gateway.gateway))
            await measure({ ...target, keysConfigured: keys }, [1]);
        } catch (error) {
          const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
          results.notes.push(`tools/list via portcullis not measured: ${reason}`);
          progress(`tools/list via portcullis not measured: ${reason}`);
        }
      }
    }
    // The gateway and its upstreams are not needed any more: stop them before the sections below,
    // which start processes of their own and measure timing that idle neighbours would disturb.
    await gateway?.stop().catch(() => {});
    gateway = undefined;
    await httpServer?.proc.stop().catch(() => {});
    httpServer = undefined;

    // Config propagation and snapshots start their own control planes (no upstreams), on each database.
    if (sections.has('propagation')) {
      const {
        propagationDatabases: databases,
        propagationFleets: fleets,
        propagationRounds: rounds,
        propagationKeys: keys,
      } = options.profile;
      const rows = await measurePropagation(
        { databases, postgresUrl: options.postgresUrl, fleets, rounds, keys },
        progress,
        note,
      );
      results.sections['config propagation (revoke mutation sent → every node refuses the key)'] = rows.filter(
        (row) => row.kind === 'revocation',
      );
      results.sections[
        'key rotation propagation (rotate mutation, grace 0, sent → every node refuses the old secret)'
      ] = rows.filter((row) => row.kind === 'rotation');
      results.sections[
        'budget exhaustion propagation (one node told the budget is spent → every other node refuses the key as spent)'
      ] = rows.filter((row) => row.kind === 'budget-exhaustion');
      propagation = rows;
      note(
        'config propagation: a control plane of its own (no upstreams) per database and N data-plane nodes, each ' +
          'its own `portcullis data-plane` process, or (processes < nodes) several nodes to a process ' +
          '(bench/src/scenarios/node-group.ts; the issue allows it for N = 16); the bench holds a notification ' +
          'stream open per node with the key and takes the time the last node closes it (a node closes it in the ' +
          'turn it swaps in the configuration without the key; no polling), then checks every node answers 401; ' +
          'warm-up rounds excluded. Rotation: the same with rotateVirtualKey (gracePeriodSeconds 0), then every ' +
          'node must answer 401 to the old secret and 200 to the new one. Budget exhaustion (2 nodes or more): ' +
          'server-everything over Streamable HTTP as upstream `ev` (every call priced 1,000 micro-units) for these ' +
          'rounds only; per round a fresh key gets a budget of 4 calls per node, each node is leased one call, and ' +
          'the first node calls until it is told the budget is spent (drawing the rest through top-ups; "mutation" ' +
          'is that time, from setBudget); from then each other node is called (2 ms after each "being topped up" ' +
          'refusal) until it answers "spent for this period"; admittedAfter is what their leases still paid for, ' +
          'within the budget',
      );
    }
    if (sections.has('snapshots')) {
      const {
        snapshotDatabases: databases,
        snapshotKeys: keyCounts,
        snapshotWholeReps: wholeReps,
        snapshotChangeReps: changeReps,
      } = options.profile;
      const rows = await measureSnapshots(
        { databases, postgresUrl: options.postgresUrl, keyCounts, wholeReps, changeReps },
        progress,
        note,
      );
      results.sections['snapshot build (control plane) and apply (node) by keys configured; ms are p50'] = rows;
      if (options.profile.quick)
        note(
          '--quick: snapshots at 1k and 10k keys on the embedded database only; the full run adds 100k keys and ' +
            'the real PostgreSQL',
        );
      note(
        'snapshots: measured in the bench process against its own database (embedded PGlite in-process, or a ' +
          'schema on the real PostgreSQL); "build change" and "apply delta" are what each change costs (one key ' +
          'revoked), "whole" what a starting control plane or a connecting node pays',
      );
    }
    if (sections.has('audit-record')) {
      progress('audit record step: in one process, with and without a recorder, in alternating rounds…');
      auditRecord = await measureAuditRecordStep(options.profile.auditRecordCalls, options.profile.auditRecordRounds);
      results.sections['audit record step in one process (CPU µs per call; added = on − off, median of rounds)'] = [
        auditRecord,
      ];
      note(
        "audit record step: the pipeline's record step with a recorder (content on, a spool in a temporary " +
          'directory, 32 calls a loop turn) and without, in one process, rounds alternating; shipping is not in it ' +
          '(the audit ingest row gives the node CPU per record shipped)',
      );
    }
    if (sections.has('audit-ingest')) {
      const row = await measureAuditIngest(
        { postgresUrl: options.postgresUrl, records: options.profile.auditIngestRecords },
        progress,
        note,
      );
      auditIngest = row;
      if (row) results.sections['audit ingest end to end (records in a node spool → rows in PostgreSQL)'] = [row];
      note(
        "audit ingest: the bench writes the records into a spool directory (the node's own AuditSpool), then " +
          'starts a control plane on a fresh schema of the real PostgreSQL and a `portcullis data-plane` node on ' +
          'that spool; records/s from the first committed batch to the last row (rows committed read from the ' +
          'chain head every 10 ms, counted at the end), CPU per record of each process over the same span, and ' +
          'of the PostgreSQL backends serving the control plane (found by their client ports; when the server is ' +
          'local)',
      );
    }
    if (sections.has('audit-cost')) {
      progress('audit cost: a node recording and one with --audit off, in paced passes side by side…');
      const { auditCostPairs: pairs, auditCostCalls: calls, auditCostRate: ratePerSec } = options.profile;
      auditCost = await measureAuditCost({ pairs, calls, ratePerSec, postgresUrl: options.postgresUrl }, progress);
      results.sections['audit recording in service (node CPU µs per call; added = on − off, median of pairs)'] = [
        auditCost,
      ];
      note(
        'audit cost: bench/src/node-ab.ts with a node recording (A) and one with --audit off (B), each with its ' +
          'own control plane and load generator, the same stdio upstream; each pair of passes runs both nodes at ' +
          'the same time, paced to one rate each; pinned: both nodes on CPU 0, everything else (control planes, ' +
          'PostgreSQL backends, upstreams, load) on the others, so the control plane storing the records does not ' +
          'run on the node’s core',
      );
    }
    // Code mode (issue 17): a gateway of its own with the recorded catalogs behind it, the token benchmark.
    if (sections.has('code-mode')) {
      try {
        const codeMode = await measureCodeModeTokens(progress);
        results.sections['code mode: input tokens of the task suite, classic vs code mode (o200k_base)'] =
          codeMode.rows;
        results.notes.push(...codeMode.notes, ...codeMode.failures.map((f) => `code mode task failed: ${f}`));
        results.targets.push(...codeMode.targets);
      } catch (error) {
        const cause = (error as { cause?: { message?: unknown } }).cause?.message;
        const reason = `${error instanceof Error ? error.message.split('\n')[0] : String(error)}${
          typeof cause === 'string' ? `: ${cause}` : ''
        }`;
        results.notes.push(`code mode not measured: ${reason}`);
        progress(`code mode not measured: ${reason}`);
      }
    }
  } finally {
    await stopPeers(peers);
    await stopExtras(extras);
    baseline?.remove();
    await load.stop();
    await gateway?.stop().catch(() => {});
    await httpServer?.proc.stop().catch(() => {});
  }

  const steal = runStealPercent(context);
  if (steal !== undefined && steal >= 5) {
    results.notes.push(
      `the hypervisor gave ${steal.toFixed(1)}% of this machine's CPU time to other guests during the run (steal ` +
        `time): every figure is slower than on a machine of its own, the direct and peer rows as much as Portcullis's`,
    );
  }
  results.rows = sortRows(results.rows);
  addRatios(results.rows);
  results.targets = [...checkTargets(results.rows, gatewayMissing, propagation), ...results.targets];
  if (sections.has('audit-ingest')) results.targets.push(auditIngestTarget(auditIngest));
  if (sections.has('audit-record')) results.targets.push(auditRecordTarget(auditRecord, auditIngest));
  if (sections.has('audit-cost')) results.targets.push(auditCostTarget(auditCost));
  const paths = [...new Set(results.rows.map((r) => r.path))];
  const compared = compareRows(results.rows, comparisonsFor(paths, baseline?.records ?? true));
  if (compared.length) {
    results.sections[
      'gateways compared in the same turns (node CPU per call; added = first − second, ratios first / second)'
    ] = compared;
    // With the paced A/B measured, recording's cost is read from it, not from the two rows here.
    const targets = comparisonTargets(compared);
    results.targets.push(...(auditCost === undefined ? targets : targets.filter((t) => !isAuditRowsTarget(t))));
  }
  process.stdout.write(`${renderReport(results)}\n`);
  const file = options.outFile ?? DEFAULT_RESULTS_FILE;
  writeResults(file, context, results);
  process.stdout.write(`\nResults: ${file}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killAllSync();
  process.exit(1);
});
