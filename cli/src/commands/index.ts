import type { OptionTable } from '../options.ts';

export interface Command {
  run: (argv: readonly string[]) => Promise<void>;
  help: string;
  options: OptionTable;
}

/**
 * Every `portcullis <command>`, each module loaded only when its command runs: a data-plane node never loads the
 * control plane's modules (TypeORM, Apollo, the embedded database), and API clients load neither plane.
 */
const LOADERS: Readonly<Record<string, () => Promise<Command>>> = {
  dev: async () => {
    const { runDev, devHelp, devOptionTable } = await import('./dev.ts');
    return { run: runDev, help: devHelp, options: devOptionTable };
  },
  'control-plane': async () => {
    const { runControlPlane, controlPlaneHelp, controlPlaneOptionTable } = await import('./control-plane.ts');
    return { run: runControlPlane, help: controlPlaneHelp, options: controlPlaneOptionTable };
  },
  'data-plane': async () => {
    const { runDataPlane, dataPlaneHelp, dataPlaneOptionTable } = await import('./data-plane.ts');
    return { run: runDataPlane, help: dataPlaneHelp, options: dataPlaneOptionTable };
  },
  audit: async () => {
    const { runAudit, auditHelp, auditExportOptionTable } = await import('./audit.ts');
    return { run: runAudit, help: auditHelp, options: auditExportOptionTable };
  },
  ...Object.fromEntries(
    (['plan', 'apply', 'export', 'schema'] as const).map((name) => [
      name,
      async () => (await import('./declarative.ts')).declarativeCommands[name],
    ]),
  ),
};

export const COMMAND_NAMES: readonly string[] = Object.keys(LOADERS);

/** The command called `name`, loaded; undefined when there is none. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  return Object.hasOwn(LOADERS, name) ? LOADERS[name]!() : undefined;
}
