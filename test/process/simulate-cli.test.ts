/**
 * `m365-forward simulate` as a user runs it: faults from the command line, usage errors, a port in
 * use, and the help text. Run: node --import tsx --test test/process/simulate-cli.test.ts
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FAULT_KIND_NAMES, FAULT_KINDS } from '../../src/simulator/fault-spec.ts';
import { runCli, startSimulateProcess } from '../helpers/cli.ts';

const MANAGE = 'https://manage.office.com';

/** One HTTPS request trusting the simulator's CA; resolves with status, headers and body text. */
function request(ca: string, method: string, url: string, opts: { token?: string; form?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  const headers: Record<string, string> = {};
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** stderr holds exactly one line, and no stack trace. */
function assertOneLine(stderr: string): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
}

describe('simulate from the command line', () => {
  test('serves the faults given with --fault, in order, and reports them and the clock in the ready line', async () => {
    const sim = await startSimulateProcess(['--records', '300', '--seed', '4', '--fault', '503@content:2', '--fault', 'not-array', '--retry-after', '9', '--clock-offset', '-2h']);
    try {
      const { ready } = sim;
      assert.deepEqual(ready.faults, ['503@content:2', 'not-array@blob:1']);
      assert.equal(ready.clockOffsetMs, -2 * 3_600_000);
      assert.equal(ready.records, 300);
      const ca = readFileSync(ready.caFile, 'utf8');
      const tok = await request(ca, 'POST', `${ready.loginUrl}/${ready.tenantId}/oauth2/v2.0/token`, {
        form: { grant_type: 'client_credentials', client_id: ready.clientId, client_secret: ready.clientSecret, scope: `${MANAGE}/.default` },
      });
      assert.equal(tok.status, 200, tok.text);
      const token = JSON.parse(tok.text).access_token as string;
      // The API's Date header runs two hours behind this machine's clock.
      assert.ok(Date.parse(String(tok.headers['date'])) < Date.now() - 3_600_000, `Date ${tok.headers['date']}`);
      const root = `${ready.apiUrl}/api/v1.0/${ready.tenantId}/activity/feed`;
      assert.equal((await request(ca, 'POST', `${root}/subscriptions/start?contentType=Audit.General`, { token })).status, 200);
      const listing = () => request(ca, 'GET', `${root}/subscriptions/content?contentType=Audit.General`, { token });
      for (let i = 0; i < 2; i++) {
        const r = await listing();
        assert.equal(r.status, 503);
        assert.equal(r.headers['retry-after'], '9');
        assert.equal(JSON.parse(r.text).error.code, 'AF50005');
      }
      const ok = await listing();
      assert.equal(ok.status, 200);
      const items = JSON.parse(ok.text) as { contentUri: string }[];
      assert.ok(items.length > 0);
      const blob = await request(ca, 'GET', items[0]!.contentUri, { token });
      assert.equal(blob.status, 200);
      const value = JSON.parse(blob.text);
      assert.ok(!Array.isArray(value) && Array.isArray(value.value), 'not-array served on the first blob');
      assert.ok(Array.isArray(JSON.parse((await request(ca, 'GET', items[0]!.contentUri, { token })).text)));
    } finally {
      await sim.stop();
    }
    assert.equal(existsSync(path.dirname(sim.ready.caFile)), false, 'the temporary CA folder is removed on exit');
  });

  test('a bad --fault is a usage error: exit 2, one line naming the valid values', async () => {
    for (const [spec, re] of [
      ['418', /^m365-forward: --fault '418': unknown kind '418' \(one of 429, 403-AF429, .*subscription-disabled\)$/],
      ['500@nowhere', /^m365-forward: --fault '500@nowhere': unknown route 'nowhere' \(one of token, list, content, blob, start, any\)$/],
      ['500:0', /^m365-forward: --fault '500:0': COUNT must be a positive integer, got '0'$/],
    ] as const) {
      const r = await runCli(['simulate', '--fault', spec], { timeoutMs: 60_000 });
      assert.equal(r.code, 2, r.stderr);
      assertOneLine(r.stderr);
      assert.match(r.stderr.trim(), re);
      assert.equal(r.stdout, '');
    }
  });

  test('a port in use: exit 1, one line saying so', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await runCli(['simulate', '--records', '10', '--port', String(port)], { timeoutMs: 60_000 });
      assert.equal(r.code, 1, r.stderr);
      assertOneLine(r.stderr);
      assert.equal(r.stderr, `m365-forward: cannot listen on 127.0.0.1:${port}: port in use (EADDRINUSE); choose another --port or 0\n`);
      assert.equal(r.stdout, '');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('--help documents every option with its default, and every fault kind with its default route', async () => {
    const r = await runCli(['simulate', '--help'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const flat = r.stdout.replace(/\s+/g, ' ');
    for (const opt of ['--fault', '--slow-ms', '--retry-after', '--clock-offset', '--late', '--late-by', '--late-release', '--page-size', '--seed', '--port']) {
      assert.ok(flat.includes(`${opt} `), `${opt} is documented`);
    }
    for (const d of ['[default: 2000]', '[default: "0s"]', '[default: 32]']) assert.ok(flat.includes(d), d);
    for (const kind of FAULT_KIND_NAMES) {
      assert.match(flat, new RegExp(` ${kind.replace(/[-]/g, '\\-')} default route: ${FAULT_KINDS[kind].defaultRoute}\\b`), kind);
    }
  });
});
