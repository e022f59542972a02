import { createHash } from 'node:crypto';
import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { isContentType } from '../management-api/content-types.ts';
import { parseInstant } from '../management-api/dates.ts';
import { encodeBlob, type EncodedEntry } from '../record/encode.ts';
import { createSink, wireFormat } from '../sink/create-sink.ts';
import { createRouter } from '../sink/route.ts';
import { DeadLetterFile, deadLetterPath, type DeadLetterEntry } from '../state/dead-letter.ts';
import { acquireStateLock } from '../state/lock.ts';
import { EXIT, makeLogger, reportFatal } from './common.ts';
import { GaveUp, outputStallLimit, watchOnce } from './deadline.ts';

/** `deadletter list -c FILE`: the records set aside, one line each (never their content). */
export function deadletterListCommand(args: { config: string }): number {
  try {
    const config = loadConfig(args.config);
    const file = new DeadLetterFile(deadLetterPath(config.state.path));
    const entries = file.read();
    process.stdout.write(`dead-letter file ${file.file}: ${entries.length} record(s)\n`);
    for (const e of entries) {
      process.stdout.write(`${e.time}\t${e.tenant}/${e.contentType}\t${e.contentId}\tId ${e.id ?? '(none)'}\t${e.record.length} bytes\t${e.tag}\t${e.reason}\n`);
    }
    return EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  }
}

/**
 * `deadletter resend -c FILE`: sends the dead-lettered records again through the configured output
 * (for after the operator raised the limits), and keeps in the file only those that still cannot
 * be sent. Needs the state to itself (it rewrites the file a running collector appends to).
 */
export async function deadletterResendCommand(args: ConfigOverrides & { config: string; timeoutMs?: number; logLevel?: string }): Promise<number> {
  const log = makeLogger(args.logLevel ?? 'warn');
  let config;
  try {
    config = loadConfig(args.config, args);
  } catch (err) {
    return reportFatal(err);
  }
  let lock;
  try {
    lock = acquireStateLock(config.state.path);
  } catch (err) {
    return reportFatal(err);
  }
  const sink = createSink(config, log);
  const ac = new AbortController();
  const stop = () => ac.abort(new GaveUp('interrupted'));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const unwatch = watchOnce(ac, sink, { stallLimitMs: outputStallLimit(config.output.forward.ackTimeoutMs), timeoutMs: args.timeoutMs });
  try {
    const file = new DeadLetterFile(deadLetterPath(config.state.path));
    const entries = file.read();
    if (entries.length === 0) {
      process.stdout.write(`nothing to resend: ${file.file} holds no records\n`);
      return EXIT.ok;
    }
    const format = wireFormat(config);
    const router = createRouter(config.routing.tagTemplate, config.routing.workloadTables);
    const remaining: DeadLetterEntry[] = [];
    let sent = 0;
    // A crash between writing a dead letter and marking its blob done writes it again next time:
    // the same record of the same blob is sent once.
    const seen = new Set<string>();
    for (const e of entries) {
      const key = `${e.contentId}\u0000${createHash('sha256').update(e.record).digest('base64')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let enc;
      try {
        enc = encodeBlob(Buffer.concat([Buffer.from('['), e.record, Buffer.from(']')]), {
          format,
          router,
          contentType: isContentType(e.contentType) ? e.contentType : 'Audit.General',
          fixedTag: e.tag,
          fallback: parseInstant(e.contentCreated) ?? parseInstant(e.time) ?? { sec: 0, nsec: 0 },
          maxFrameBytesAlone: format.wire === 'forward' ? config.output.forward.maxRecordBytes : undefined,
        });
      } catch (err) {
        // The file was edited by hand, or is damaged: keep the entry, say why.
        remaining.push({ ...e, reason: `its record is not valid JSON (${(err as Error).message})` });
        continue;
      }
      if (enc.deadLetters.length > 0) {
        remaining.push({ ...e, reason: enc.deadLetters[0]!.reason });
        continue;
      }
      try {
        await sink.send(enc.entries as EncodedEntry[], ac.signal);
        sent++;
      } catch (err) {
        // Keep this one and everything after it: the output is gone (the reason is reported below).
        remaining.push(e, ...entries.slice(entries.indexOf(e) + 1));
        await file.rewrite(remaining);
        const reason = ac.signal.aborted ? (ac.signal.reason as Error).message : (err as Error).message;
        process.stderr.write(`m365-forward: ${reason}; resent ${sent} record(s), ${remaining.length} remain in ${file.file}\n`);
        return EXIT.failed;
      }
    }
    await file.rewrite(remaining);
    process.stdout.write(`resent ${sent} record(s) to ${sink.description}, every one acknowledged; ${remaining.length} remain in ${file.file}\n`);
    for (const e of remaining) process.stdout.write(`  still cannot send ${e.contentId} Id ${e.id ?? '(none)'}: ${e.reason}\n`);
    return remaining.length ? EXIT.failed : EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  } finally {
    unwatch();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await sink.close();
    lock.release();
  }
}
