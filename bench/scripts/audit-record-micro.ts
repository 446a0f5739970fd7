/**
 * The record step's audit cost alone, as `npm run bench -- --only audit-record` measures it, with other counts:
 * `npx tsx bench/scripts/audit-record-micro.ts [calls per round] [rounds]`.
 */
import { measureAuditRecordStep } from '../src/scenarios/audit-record.ts';

const row = await measureAuditRecordStep(Number(process.argv[2] ?? 20_000), Number(process.argv[3] ?? 10));
console.log(
  `record step, ${row.calls} calls x ${row.rounds} rounds: on ${row.onUs.toFixed(2)} us, off ${row.offUs.toFixed(2)} ` +
    `us, audit adds median ${row.addedUs.toFixed(2)} us (min ${row.addedMinUs.toFixed(2)}, max ` +
    `${row.addedMaxUs.toFixed(2)})`,
);
