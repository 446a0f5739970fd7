import 'reflect-metadata';
import { errorMessage, PortcullisError } from '../../common/src/index.ts';
import { loadCommand } from './commands/index.ts';

const usage = `Usage: portcullis <command> [options]

Commands:
  dev             control plane and one data-plane node in one process (npm start)
  control-plane   the GraphQL API, database and config stream
  data-plane      one MCP gateway node
  audit           verify the audit trail's hash chain, or export records as NDJSON
  plan            show what applying a configuration document (YAML/JSON) would change
  apply           apply a configuration document in one transaction
  export          write the live configuration as a document
  schema          print the JSON Schema of the configuration document

Run "portcullis <command> --help" for a command's options.
`;

async function main(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage);
    return;
  }
  const command = await loadCommand(name);
  if (!command) {
    process.stderr.write(`portcullis: unknown command "${name}"\n\n${usage}`);
    process.exitCode = 2;
    return;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help);
    return;
  }
  await command.run(rest);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const prefix = error instanceof PortcullisError ? '' : 'unexpected error: ';
  process.stderr.write(`portcullis: ${prefix}${errorMessage(error)}\n`);
  process.exit(error instanceof PortcullisError ? 2 : 1);
});
