import type { OptionTable } from '../options.ts';
import { controlPlaneHelp, controlPlaneOptionTable, runControlPlane } from './control-plane.ts';
import { dataPlaneHelp, dataPlaneOptionTable, runDataPlane } from './data-plane.ts';
import { auditHelp, auditExportOptionTable, runAudit } from './audit.ts';
import { devHelp, devOptionTable, runDev } from './dev.ts';
import { declarativeCommands } from './declarative.ts';

export interface Command {
  run: (argv: readonly string[]) => Promise<void>;
  help: string;
  options: OptionTable;
}

/** Every `portcullis <command>`. */
export const commands: Readonly<Record<string, Command>> = {
  dev: { run: runDev, help: devHelp, options: devOptionTable },
  'control-plane': { run: runControlPlane, help: controlPlaneHelp, options: controlPlaneOptionTable },
  'data-plane': { run: runDataPlane, help: dataPlaneHelp, options: dataPlaneOptionTable },
  audit: { run: runAudit, help: auditHelp, options: auditExportOptionTable },
  ...declarativeCommands,
};
