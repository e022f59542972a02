#!/usr/bin/env -S node --import tsx
/**
 * m365-forward command line. Each command lives in src/commands/; this file only declares the
 * commands and their flags (yargs) and turns results into exit codes.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { checkCommand } from './commands/check.ts';
import { demoCommand } from './commands/demo.ts';
import { runCommand } from './commands/run.ts';
import { replayCommand, TIME_FORMS } from './commands/replay.ts';
import { simulateArgs, simulateCommand, simulateOptions } from './commands/simulate.ts';
import { stateShowCommand, subscriptionsCommand } from './commands/admin.ts';
import { deadletterListCommand, deadletterResendCommand } from './commands/deadletter.ts';
import { parseDuration } from './config/durations.ts';
import { CONTENT_TYPES } from './management-api/content-types.ts';
import { reportFatal } from './commands/common.ts';
// Imported, not looked up at run time: the bundle (src/build.mjs) carries it, wherever it runs from.
import pkg from '../package.json' with { type: 'json' };

const configOpt = { alias: 'c', type: 'string', demandOption: true, describe: 'collector config file (YAML)', requiresArg: true } as const;
const overrideOpts = <T,>(y: Argv<T>) =>
  y
    .option('output', { choices: ['forward', 'stdout'] as const, describe: 'override output.type' })
    .option('record-format', { choices: ['record', 'devo'] as const, describe: 'override output.record_format (devo: {devo_tag, message} for a syslog output to Devo)' })
    .option('forward-host', { type: 'string', describe: 'override output.forward.host', requiresArg: true })
    .option('forward-port', { type: 'number', describe: 'override output.forward.port', requiresArg: true })
    .option('state', { type: 'string', describe: 'override state.path', requiresArg: true });

/** Live progress lines on stderr (src/support/progress.ts): drawn only when stderr is a terminal; --no-progress turns them off there too. */
const progressOpt = { type: 'boolean', default: true, describe: 'with --once and replay: a live line per feed on stderr when it is a terminal (never in a pipe or a file); --no-progress: none' } as const;

// A reader that goes away early (`| head`) must not crash a command with an unhandled EPIPE;
// output after that point is simply dropped (the stdout sink notices and stops the run itself).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

/** `--timeout DURATION` → ms; a bad value is a usage error (exit 2). */
function timeoutArg(v: string | undefined, once: boolean): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) usage(`--timeout must be a duration like 90s, 10m or 2h, got ${JSON.stringify(v).slice(0, 40)}`);
  if (!once) usage('--timeout applies to run --once (a service runs until it is stopped)');
  return ms;
}

function usage(msg: string): never {
  process.stderr.write(`m365-forward: ${msg}\nRun with --help for usage.\n`);
  process.exit(2);
}

let exitCode = 0;
const done = (code: number) => {
  exitCode = code;
};

await yargs(hideBin(process.argv))
  .scriptName('m365-forward')
  .version(pkg.version)
  .usage('$0 <command> [options]\n\nMicrosoft 365 audit logs (Office 365 Management Activity API) into Fluent Bit or Vector over the Forward protocol.')
  .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, describe: 'log level (logs go to stderr as JSON lines)' })
  .command(
    'run',
    'poll the Management Activity API and forward every record (for ever, or --once)',
    (y) =>
      overrideOpts(
        y
          .option('config', configOpt)
          .option('once', { type: 'boolean', default: false, describe: 'collect everything available now, wait for every ack and checkpoint, exit' })
          .option('timeout', { type: 'string', requiresArg: true, describe: 'with --once: stop at this deadline (e.g. 10m), keep what was acked, exit 1 naming what it waited for' })
          .option('progress', progressOpt),
      ),
    async (a) =>
      done(
        await runCommand({
          config: a.config, once: a.once, timeoutMs: timeoutArg(a.timeout, a.once), output: a.output, recordFormat: a['record-format'],
          forwardHost: a['forward-host'], forwardPort: a['forward-port'], statePath: a.state, logLevel: a['log-level'], progress: a.progress,
        }),
      ),
  )
  .command(
    'replay',
    'send again the content the API made available in a time range (within the 7 days it keeps), without touching the live checkpoint',
    (y) =>
      overrideOpts(
        y
          .option('config', configOpt)
          .option('tenant', { type: 'string', demandOption: true, requiresArg: true, describe: 'the tenant to replay (its `name` in the config)' })
          .option('content-type', { choices: CONTENT_TYPES, describe: 'only this content type (default: every content type of the tenant)' })
          .option('from', { type: 'string', demandOption: true, requiresArg: true, describe: `start of the range, inclusive (contentCreated, to the second): ${TIME_FORMS}` })
          .option('to', { type: 'string', requiresArg: true, describe: "end of the range, exclusive (default: the API's now)" })
          .option('timeout', { type: 'string', requiresArg: true, describe: 'stop at this deadline (e.g. 10m), exit 1 naming what it waited for' })
          .option('progress', progressOpt),
      ),
    async (a) =>
      done(
        await replayCommand({
          config: a.config, tenant: a.tenant, contentType: a['content-type'], from: a.from, to: a.to, timeoutMs: timeoutArg(a.timeout, true), progress: a.progress,
          output: a.output, recordFormat: a['record-format'], forwardHost: a['forward-host'], forwardPort: a['forward-port'], statePath: a.state, logLevel: a['log-level'],
        }),
      ),
  )
  .command('simulate', 'start the embedded Management API simulator (HTTPS on 127.0.0.1) and print a JSON line when ready', simulateOptions, async (a) => done(await simulateCommand(simulateArgs(a))))
  .command(
    'demo',
    'run the simulator and the collector together; print the routed records and a summary',
    (y) =>
      y
        .option('records', { type: 'number', default: 60, describe: 'synthetic records to serve' })
        .option('seed', { type: 'number', default: 1 })
        .option('span', { type: 'number', default: 20, describe: 'hours of history' })
        .option('late', { type: 'number', default: 0.1, describe: 'fraction of blobs listed late' })
        .option('output', { choices: ['stdout', 'forward'] as const, default: 'stdout' as const, describe: 'print records, or send them to Fluent Bit' })
        .option('record-format', { choices: ['record', 'devo'] as const, default: 'record' as const, describe: 'record: as the API sent it; devo: {devo_tag, message}' })
        .option('forward-host', { type: 'string', default: '127.0.0.1' })
        .option('forward-port', { type: 'number', default: 24224 }),
    async (a) =>
      done(await demoCommand({ records: a.records, seed: a.seed, span: a.span, late: a.late, output: a.output, recordFormat: a['record-format'], forwardHost: a['forward-host'], forwardPort: a['forward-port'], logLevel: a['log-level'] })),
  )
  .command(
    'check',
    'validate the config, get a token, list subscriptions, measure clock skew, send one test record',
    (y) => overrideOpts(y.option('config', configOpt)),
    async (a) => done(await checkCommand({ config: a.config, output: a.output, recordFormat: a['record-format'], forwardHost: a['forward-host'], forwardPort: a['forward-port'], statePath: a.state })),
  )
  .command('subscriptions', 'list, start or stop the API subscriptions of every configured tenant', (y) =>
    y
      .command('list', 'list subscriptions', (z) => z.option('config', configOpt), async (a) => done(await subscriptionsCommand('list', { config: a.config })))
      .command(
        'start',
        'start subscriptions (already enabled is fine)',
        (z) => z.option('config', configOpt).option('content-type', { choices: CONTENT_TYPES, describe: 'only this content type' }),
        async (a) => done(await subscriptionsCommand('start', { config: a.config, contentType: a['content-type'] })),
      )
      .command(
        'stop',
        'stop subscriptions (content from before a later restart is lost for good)',
        (z) => z.option('config', configOpt).option('content-type', { choices: CONTENT_TYPES, describe: 'only this content type' }),
        async (a) => done(await subscriptionsCommand('stop', { config: a.config, contentType: a['content-type'] })),
      )
      .demandCommand(1, 'name a subcommand: list, start or stop'),
  )
  .command('deadletter', 'records that could not be sent (too large, too deep, not an object): list them, or send them again', (y) =>
    y
      .command('list', 'list the dead-lettered records (where they came from and why)', (z) => z.option('config', configOpt), (a) => done(deadletterListCommand({ config: a.config })))
      .command(
        'resend',
        'send them again through the configured output (after raising the limits); the collector must be stopped',
        (z) => overrideOpts(z.option('config', configOpt).option('timeout', { type: 'string', requiresArg: true, describe: 'stop at this deadline (e.g. 5m)' })),
        async (a) =>
          done(
            await deadletterResendCommand({
              config: a.config, timeoutMs: timeoutArg(a.timeout, true), output: a.output, recordFormat: a['record-format'],
              forwardHost: a['forward-host'], forwardPort: a['forward-port'], statePath: a.state, logLevel: a['log-level'],
            }),
          ),
      )
      .demandCommand(1, 'name a subcommand: list or resend'),
  )
  .command('state', 'inspect the checkpoint state', (y) =>
    y
      .command(
        'show',
        'show every feed\'s checkpoint (-c FILE, or --state PATH without a config)',
        (z) =>
          z
            .option('config', { ...configOpt, demandOption: false })
            .option('state', { type: 'string', describe: 'a state file to show (default: the config\'s state.path)', requiresArg: true })
            .check((a) => (a.config || a.state ? true : 'name the collector config (-c FILE) or a state file (--state PATH)')),
        (a) => done(stateShowCommand({ config: a.config, state: a.state })),
      )
      .demandCommand(1, 'name a subcommand: show'),
  )
  .demandCommand(1, 'name a command (see --help)')
  .strict()
  .recommendCommands()
  .fail((msg, err) => {
    // Usage errors are one line and exit 2; an error thrown by a command is a bug: reportFatal
    // prints it (with its stack) and the exit code is 1.
    if (err && !msg) {
      process.exitCode = reportFatal(err);
      return;
    }
    usage(msg ?? String(err));
  })
  .help()
  .wrap(Math.min(110, process.stdout.columns || 100))
  .parseAsync();

// Let pending handles close on their own (sockets, timers); force the exit code, not the exit.
process.exitCode = exitCode;
