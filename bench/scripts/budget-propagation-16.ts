/**
 * Issue 15: the propagation rows for 16 nodes in 4 processes on one database, budget exhaustion
 * included. `npx tsx bench/scripts/budget-propagation-16.ts embedded|postgres [rounds] [keys]`.
 */
import { measurePropagation } from '../src/scenarios/propagation.ts';

const database = process.argv[2] === 'postgres' ? 'postgres' : 'embedded';
const rounds = Number(process.argv[3] ?? 5);
const rows = await measurePropagation(
  {
    databases: [database],
    postgresUrl: process.env['DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/test',
    fleets: [{ nodes: 16, processes: 4 }],
    rounds,
    keys: Number(process.argv[4] ?? 100),
  },
  (line) => console.log(`progress: ${line}`),
  (line) => console.log(`NOTE: ${line}`),
);
for (const row of rows)
  console.log(
    `${row.kind} ${row.database} ${row.nodes}/${row.processes}: p50 ${row.p50Ms.toFixed(1)} ms, p99 ` +
      `${row.p99Ms.toFixed(1)} ms, max ${row.maxMs.toFixed(1)} ms, mutation/spending p50 ` +
      `${row.mutationP50Ms.toFixed(1)} ms` +
      (row.admittedAfterP50 === undefined ? '' : `, admitted after p50 ${row.admittedAfterP50}`),
  );
