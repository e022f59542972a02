/**
 * Pure rules of the simulator: time parsing, window validation, paging tokens, listing, assertions,
 * the fault catalogue and `--fault` parser, body faults, late release, and the `simulate` flags.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { listenFailure, parseSignedDuration, simulatorOptions, type SimulateArgs } from '../../src/commands/simulate.ts';
import { simulatorConfigTree, simulatorTenantName } from '../../src/config/simulator-config.ts';
import { CollectorError } from '../../src/errors.ts';
import { checkClientAssertion, JtiStore, type RegisteredCertificate } from '../../src/simulator/assertion.ts';
import { ContentStore, makeContentId } from '../../src/simulator/content-store.ts';
import { renderRecords } from '../../src/simulator/corpus.ts';
import { faultApplies, faultProblem, FAULT_KIND_NAMES, FAULT_KINDS, formatFault, parseFaultSpec } from '../../src/simulator/fault-spec.ts';
import { FaultQueue, faultResponse, mangleBody, RequestQuota } from '../../src/simulator/faults.ts';
import { Rng } from '../../src/simulator/prng.ts';
import { planBlobTimes } from '../../src/simulator/schedule.ts';
import { decodePageToken, encodePageToken } from '../../src/simulator/paging.ts';
import { classify, queryParams } from '../../src/simulator/routes.ts';
import { emptyTenantStats, TenantDirectory, tenantSeed, type TenantState } from '../../src/simulator/tenants.ts';
import { signJwt } from '../../src/simulator/jwt.ts';
import { parseListTime, resolveWindow } from '../../src/simulator/time-window.ts';

const HOUR = 3_600_000;
const now = Date.UTC(2025, 4, 20, 12, 0, 0);

describe('parseListTime (the API\'s strict listing times)', () => {
  const ok: [string, string][] = [
    ['2025-05-20', '2025-05-20T00:00:00.000Z'],
    ['2025-05-20T07:08', '2025-05-20T07:08:00.000Z'],
    ['2025-05-20T07:08:09', '2025-05-20T07:08:09.000Z'],
    ['2025-05-20T07:08:09Z', '2025-05-20T07:08:09.000Z'],
    ['2025-05-20T07:08:09.5', '2025-05-20T07:08:09.500Z'],
    ['2025-05-20T07:08:09.1234567Z', '2025-05-20T07:08:09.123Z'],
  ];
  for (const [text, iso] of ok) it(`accepts ${text}`, () => assert.equal(new Date(parseListTime(text)!).toISOString(), iso));
  for (const bad of ['2025-5-20', '2025-02-30', '2025-05-20T24:00', '2025-05-20 07:08', '2025-05-20T07:08:09+02:00', 'yesterday', '']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseListTime(bad), null));
  }
});

describe('resolveWindow', () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  it('defaults to the last 24 h', () => assert.deepEqual(resolveWindow(undefined, undefined, now), { ok: true, startMs: now - 24 * HOUR, endMs: now, explicit: false }));
  it('accepts exactly 24 h, an end in the future, and a start exactly 7 days back', () => {
    assert.equal(resolveWindow(iso(now - 24 * HOUR), iso(now), now).ok, true);
    assert.equal(resolveWindow(iso(now - HOUR), iso(now + 5 * HOUR), now).ok, true);
    assert.equal(resolveWindow(iso(now - 7 * 24 * HOUR), iso(now - 7 * 24 * HOUR + HOUR), now).ok, true);
  });
  const bad: [string, string | undefined, string | undefined, string][] = [
    ['one of the pair', iso(now - HOUR), undefined, 'AF20055'],
    ['over 24 h', iso(now - 24 * HOUR - 1), iso(now), 'AF20055'],
    ['start = end', iso(now), iso(now), 'AF20055'],
    ['older than 7 days', iso(now - 7 * 24 * HOUR - 1), iso(now - 6 * 24 * HOUR), 'AF20055'],
    ['unparseable', 'x', iso(now), 'AF20002'],
  ];
  for (const [name, s, e, code] of bad) {
    it(`rejects ${name} with ${code}`, () => {
      const r = resolveWindow(s, e, now);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.code, code);
    });
  }
});

describe('paging tokens', () => {
  it('round-trip and are bound to their query', () => {
    const cursor = { availableAt: now, contentId: makeContentId('Audit.Exchange', now, 1, 'emea0036') };
    const t = encodePageToken(cursor, 'Audit.Exchange', 1, 2);
    assert.deepEqual(decodePageToken(t, 'Audit.Exchange', 1, 2), cursor);
    assert.equal(decodePageToken(t, 'Audit.General', 1, 2), null);
    assert.equal(decodePageToken(t, 'Audit.Exchange', 1, 3), null);
    assert.equal(decodePageToken(`${t}x`, 'Audit.Exchange', 1, 2), null);
    assert.equal(decodePageToken('not a token!', 'Audit.Exchange', 1, 2), null);
  });
});

describe('content store', () => {
  it('shapes content ids like the real ones', () => {
    assert.match(makeContentId('DLP.All', now, 17, 'na0030'), /^20250520120000000\d{6}\$20250520120000000\d{6}\$dlp_all\$DLP_All\$na0030$/);
  });

  it('lists by window, availability and expiry, in (availableAt, contentId) order, paged', () => {
    const store = new ContentStore('https://x/api/v1.0/t/activity/feed', 'emea0036', 2 * HOUR);
    const a = store.add('Audit.General', now - 3 * HOUR, now - 3 * HOUR, renderRecords([{ n: 1 }])); // expired at now - 1 h
    const b = store.add('Audit.General', now - HOUR, now - 10 * 60_000, renderRecords([{ n: 2 }])); // late, listed
    const c = store.add('Audit.General', now - 50 * 60_000, now - 50 * 60_000, renderRecords([{ n: 3 }]));
    const d = store.add('Audit.General', now - 30 * 60_000, now + 60_000, renderRecords([{ n: 4 }])); // not yet listed
    store.add('Audit.Exchange', now - HOUR, now - HOUR, renderRecords([{ n: 5 }]));
    const q = { contentType: 'Audit.General', startMs: now - 4 * HOUR, endMs: now, nowMs: now, visibleFromMs: -Infinity, after: null, limit: 10 };
    assert.deepEqual(store.list(q).items.map((x) => x.contentId), [c.contentId, b.contentId]);
    const first = store.list({ ...q, limit: 1 });
    assert.deepEqual([first.items.length, first.more], [1, true]);
    const second = store.list({ ...q, limit: 1, after: first.items[0]! });
    assert.deepEqual([second.items[0]!.contentId, second.more], [b.contentId, false]);
    assert.equal(store.list({ ...q, nowMs: now + 2 * 60_000, endMs: now }).items.some((x) => x.contentId === d.contentId), true);
    assert.equal(store.list({ ...q, nowMs: now - 4 * HOUR + 1 }).items.length, 0);
    assert.equal(store.list({ ...q, nowMs: now - 2.5 * HOUR }).items.some((x) => x.contentId === a.contentId), true);
    assert.equal(a.contentExpiration, new Date(now - HOUR).toISOString());
  });

  it('pages through many blobs added out of order: each once, in listing order, the cursor found by search', () => {
    const store = new ContentStore('https://x/api/v1.0/t/activity/feed', 'emea0036', 7 * 24 * HOUR);
    const rng = new Rng(4);
    for (let i = 0; i < 300; i++) {
      const created = now - rng.int(1, 20 * 60) * 60_000;
      store.add('Audit.General', created, created + rng.int(0, 2) * 60_000, renderRecords([{ i }]));
    }
    const q = { contentType: 'Audit.General', startMs: now - 24 * HOUR, endMs: now, nowMs: now, visibleFromMs: -Infinity, limit: 7 };
    const seen: string[] = [];
    let after = null;
    for (;;) {
      const page = store.list({ ...q, after });
      seen.push(...page.items.map((x) => x.contentId));
      if (!page.more) break;
      after = page.items[page.items.length - 1]!;
    }
    const expected = store
      .blobs()
      .filter((x) => x.availableAt <= now)
      .sort((x, y) => x.availableAt - y.availableAt || (x.contentId < y.contentId ? -1 : 1))
      .map((x) => x.contentId);
    assert.deepEqual(seen, expected);
  });

  it('holds each body as bytes and parses records on demand', () => {
    const store = new ContentStore('https://x/api/v1.0/t/activity/feed', 'emea0036', HOUR);
    const blob = store.add('Audit.General', now, now, renderRecords([{ a: 1 }, { b: 'é' }]));
    assert.ok(Buffer.isBuffer(blob.body));
    assert.equal(blob.body.toString('utf8'), '[{"a":1},{"b":"é"}]');
    assert.equal(blob.recordCount, 2);
    assert.deepEqual(blob.records, [{ a: 1 }, { b: 'é' }]);
    assert.notEqual(blob.records, blob.records, 'a fresh parse each time: nothing cached');
  });
});

describe('routes', () => {
  it('classifies paths and decodes a percent-encoded contentId', () => {
    assert.deepEqual(classify('GET', '/api/v1.0/T/activity/feed/audit/1%242%24x?PublisherIdentifier=p'), { name: 'blob', tenant: 'T', contentId: '1$2$x' });
    assert.equal(classify('GET', '/api/v1/T/activity/feed/subscriptions/content?x').name, 'content');
    assert.equal(classify('GET', '/api/v1.0/T/activity/feed/subscriptions/start').name, 'unknown');
    assert.deepEqual(classify('POST', '/T/oauth2/token?api-version=1.0'), { name: 'token', version: 'v1', tenant: 'T', path: '/T/oauth2/token' });
    assert.equal(classify('GET', '/T/v2.0/.well-known/openid-configuration').name, 'metadata');
    assert.equal(classify('GET', '/nope').name, 'unknown');
  });
  it('matches query parameter names case-insensitively', () => {
    const q = queryParams('/x?ContentType=A&STARTTIME=s&publisherIdentifier=p&contentType=ignored');
    assert.deepEqual([q.get('contenttype'), q.get('starttime'), q.get('publisheridentifier')], ['A', 's', 'p']);
  });
});

describe('client assertion checks', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert: RegisteredCertificate = { publicKey, x5t: 'sha1thumb', x5tS256: 'sha256thumb', sha1Hex: 'AB' };
  const aud = 'https://127.0.0.1:1/t/oauth2/v2.0/token';
  const nowS = Math.floor(now / 1000);
  const make = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    signJwt({ alg: 'RS256', typ: 'JWT', x5t: 'sha1thumb', ...header }, { aud, iss: 'cid', sub: 'cid', jti: randomUUID(), nbf: nowS, exp: nowS + 600, ...claims }, privateKey);
  const check = (assertion: string, jtis = new JtiStore()) =>
    checkClientAssertion({ assertion, clientId: 'cid', audience: aud, nowMs: now, certificates: [cert], jtis, rejectReplay: true })?.code ?? 'ok';

  it('accepts a good assertion and the same one re-sent, refuses its jti in another assertion', () => {
    const jtis = new JtiStore();
    const a = make({ jti: 'j-1' });
    assert.equal(check(a, jtis), 'ok');
    assert.equal(check(a, jtis), 'ok', 'msal-node re-sends its cached assertion');
    assert.equal(check(make({ jti: 'j-1', nbf: nowS - 1 }), jtis), 700025);
  });
  const cases: [string, () => string, number][] = [
    ['garbage', () => 'abc', 50027],
    ['alg none', () => make().replace(/^[^.]+/, Buffer.from('{"alg":"none","x5t":"sha1thumb"}').toString('base64url')), 50027],
    ['unknown thumbprint', () => make({}, { x5t: 'other' }), 700027],
    ['tampered payload', () => { const [h, , s] = make().split('.'); return `${h}.${Buffer.from(JSON.stringify({ aud, iss: 'cid', sub: 'cid', jti: 'j', nbf: nowS, exp: nowS + 60 })).toString('base64url')}.${s}`; }, 7000274],
    ['iss mismatch', () => make({ iss: 'other' }), 700021],
    ['wrong aud', () => make({ aud: 'https://login.microsoftonline.com/t/oauth2/v2.0/token' }), 700212],
    ['expired', () => make({ exp: nowS - 301 }), 700024],
    ['nbf in the future', () => make({ nbf: nowS + 301 }), 700024],
    ['exp in milliseconds', () => make({ exp: now + 600_000 }), 700024],
    ['no jti', () => make({ jti: undefined }), 50027],
  ];
  for (const [name, build, code] of cases) it(`rejects ${name} (${code})`, () => assert.equal(check(build()), code));
  it('allows 5 minutes of skew', () => {
    assert.equal(check(make({ exp: nowS - 200 })), 'ok');
    assert.equal(check(make({ nbf: nowS + 200 })), 'ok');
  });
});

describe('request quota', () => {
  it('refuses with 403 AF429 past the per-minute quota, per PublisherIdentifier, and resets each minute', () => {
    const q = new RequestQuota(2);
    const t = Math.floor(now / 60_000) * 60_000;
    assert.equal(q.check('blob', 'pub', t), null);
    assert.equal(q.check('blob', 'pub', t + 1), null);
    const refused = q.check('blob', 'pub', t + 2);
    assert.equal(refused?.status, 403);
    assert.deepEqual(JSON.parse(String(refused!.body)), { error: { code: 'AF429', message: 'Too many requests. Method=GetBlob, PublisherId=pub' } });
    assert.equal(q.check('content', undefined, t + 3), null, 'another pool');
    assert.equal(q.check('blob', 'pub', t + 60_000), null, 'next minute');
  });
});

describe('--fault KIND[@ROUTE][:COUNT]', () => {
  const good: [string, object][] = [
    ['500', { kind: '500', route: 'any', count: 1 }],
    ['429@content:3', { kind: '429', route: 'content', count: 3 }],
    ['403-AF429@blob', { kind: '403-AF429', route: 'blob', count: 1 }],
    ['404', { kind: '404', route: 'blob', count: 1 }],
    ['html', { kind: 'html', route: 'any', count: 1 }],
    ['html@token:2', { kind: 'html', route: 'token', count: 2 }],
    ['not-array', { kind: 'not-array', route: 'blob', count: 1 }],
    ['not-array@content', { kind: 'not-array', route: 'content', count: 1 }],
    ['invalid-json', { kind: 'invalid-json', route: 'blob', count: 1 }],
    ['invalid-json@token', { kind: 'invalid-json', route: 'token', count: 1 }],
    ['subscription-disabled', { kind: 'subscription-disabled', route: 'content', count: 1 }],
    ['subscription-disabled@list', { kind: 'subscription-disabled', route: 'list', count: 1 }],
    ['truncate:2', { kind: 'truncate', route: 'blob', count: 2 }],
    ['reset@start', { kind: 'reset', route: 'start', count: 1 }],
    ['expire-token@content:12', { kind: 'expire-token', route: 'content', count: 12 }],
  ];
  for (const [text, fault] of good) it(`parses ${text}`, () => assert.deepEqual(parseFaultSpec(text), { fault }));

  it('gives slow its --slow-ms and 429/503 their --retry-after, and nothing to other kinds', () => {
    const settings = { delayMs: 300, retryAfterSeconds: 7 };
    assert.deepEqual(parseFaultSpec('slow@list', settings), { fault: { kind: 'slow', route: 'list', count: 1, delayMs: 300 } });
    assert.deepEqual(parseFaultSpec('429', settings), { fault: { kind: '429', route: 'any', count: 1, retryAfterSeconds: 7 } });
    assert.deepEqual(parseFaultSpec('503:2', settings), { fault: { kind: '503', route: 'any', count: 2, retryAfterSeconds: 7 } });
    assert.deepEqual(parseFaultSpec('500', settings), { fault: { kind: '500', route: 'any', count: 1 } });
  });

  const bad: [string, RegExp][] = [
    ['418', /unknown kind '418' \(one of 429, 403-AF429, 500, 503, reset, truncate, slow, expire-token, 404, html, not-array, invalid-json, subscription-disabled\)/],
    ['500@nowhere', /unknown route 'nowhere' \(one of token, list, content, blob, start, any\)/],
    ['500:0', /COUNT must be a positive integer, got '0'/],
    ['500:-1', /COUNT must be a positive integer/],
    ['500:1.5', /COUNT must be a positive integer/],
    ['500:', /COUNT must be a positive integer/],
    ['500@', /unknown route ''/],
    ['', /unknown kind ''/],
    ['500@blob@list', /unknown route 'blob@list'/],
    ['not-array@token', /kind 'not-array' cannot hit route 'token' \(one of list, content, blob, any\)/],
    ['expire-token@token', /kind 'expire-token' cannot hit route 'token'/],
    ['subscription-disabled@start', /cannot hit route 'start' \(one of list, content, blob, any\)/],
  ];
  for (const [text, re] of bad) {
    it(`refuses ${JSON.stringify(text)} naming the valid values`, () => {
      const r = parseFaultSpec(text);
      assert.ok('problem' in r, `accepted ${text}`);
      assert.match(r.problem, re);
      assert.ok(!r.problem.includes('\n'), 'one line');
    });
  }

  it('gives every kind a default route it can hit, and formats what it parses', () => {
    for (const kind of FAULT_KIND_NAMES) {
      const { defaultRoute } = FAULT_KINDS[kind];
      assert.equal(faultProblem({ kind, route: defaultRoute, count: 1 }), null, kind);
      const r = parseFaultSpec(kind);
      assert.ok('fault' in r);
      assert.equal(formatFault(r.fault), `${kind}@${defaultRoute}:1`);
      assert.deepEqual(parseFaultSpec(formatFault(r.fault)), r);
    }
    assert.deepEqual(new Set(FAULT_KIND_NAMES), new Set(Object.keys(FAULT_KINDS)));
  });
});

describe('fault queue', () => {
  it("matches 'any' only to routes the kind applies to, in injection order, `count` times", () => {
    const q = new FaultQueue();
    q.inject({ kind: 'not-array', route: 'any', count: 1 });
    q.inject({ kind: '500', route: 'any', count: 2 });
    assert.equal(q.take('token')?.kind, '500', 'not-array never hits the token endpoint');
    assert.equal(q.take('start')?.kind, '500');
    assert.equal(q.take('metadata'), null, 'never metadata');
    assert.equal(q.take('blob')?.kind, 'not-array');
    assert.equal(q.take('blob'), null);
  });

  it('keeps a fault armed while the caller says it would have no effect yet', () => {
    const q = new FaultQueue();
    q.inject({ kind: 'subscription-disabled', route: 'content', count: 1 });
    assert.equal(q.take('content', () => false), null);
    assert.deepEqual(q.armed(), [{ kind: 'subscription-disabled', route: 'content', count: 1 }]);
    assert.equal(q.take('content', () => true)?.kind, 'subscription-disabled');
    assert.deepEqual(q.armed(), []);
  });

  it('refuses a fault that could never be served', () => {
    const q = new FaultQueue();
    assert.throws(() => q.inject({ kind: 'expire-token', route: 'token', count: 1 }), /^Error: injectFault: kind 'expire-token' cannot hit route 'token'/);
    assert.throws(() => q.inject({ kind: 'nope' as never, route: 'blob', count: 1 }), /unknown kind 'nope'/);
    assert.equal(faultApplies('invalid-json', 'token'), true);
    assert.equal(faultApplies('subscription-disabled', 'token'), false);
  });
});

describe('proxy-style and body faults', () => {
  const ok = { status: 200, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: Buffer.from('[{"Id":"a","N":1},{"Id":"b","T":"é"}]') };

  it('404: no AF code, empty body; html: a 502 text/html page', () => {
    const nf = faultResponse({ kind: '404', route: 'blob', count: 1 }, 'blob', undefined, now)!;
    assert.deepEqual([nf.status, String(nf.body), nf.headers['Content-Type']], [404, '', undefined]);
    const html = faultResponse({ kind: 'html', route: 'any', count: 1 }, 'token', undefined, now)!;
    assert.equal(html.status, 502);
    assert.equal(html.headers['Content-Type'], 'text/html');
    assert.match(String(html.body), /^<html>[\s\S]*Bad Gateway[\s\S]*<\/html>\r\n$/);
  });

  it('not-array wraps the array in an object', () => {
    const r = mangleBody('not-array', ok);
    const value = JSON.parse(String(r.body));
    assert.equal(r.status, 200);
    assert.equal(Array.isArray(value), false);
    assert.deepEqual(value, { value: JSON.parse(String(ok.body)) });
  });

  it('invalid-json keeps 200 application/json with a body that does not parse', () => {
    const r = mangleBody('invalid-json', ok);
    assert.equal(r.status, 200);
    assert.match(r.headers['Content-Type']!, /^application\/json/);
    assert.throws(() => JSON.parse(String(r.body)), SyntaxError);
    assert.equal(r.body.length, ok.body.length - 1, 'closing bracket dropped');
    const tiny = mangleBody('invalid-json', { ...ok, body: '[]' });
    assert.throws(() => JSON.parse(String(tiny.body)), SyntaxError);
    const empty = mangleBody('invalid-json', { status: 200, headers: {}, body: '' });
    assert.throws(() => JSON.parse(String(empty.body)), SyntaxError);
  });

  it('leaves an error answer alone: a refused request is never turned into a 200', () => {
    const denied = { status: 401, headers: {}, body: '{"Message":"Authorization has been denied for this request."}' };
    assert.equal(mangleBody('not-array', denied), denied);
    assert.equal(mangleBody('invalid-json', denied), denied);
  });
});

describe('late release schedule', () => {
  const anchor = now;
  const releaseAt = anchor + 20_000;
  const byMs = [30 * HOUR, 6 * 24 * HOUR];

  it('releases the chosen blobs at one time, dated the given durations before it, in turn', () => {
    const times = planBlobTimes(new Rng(2), 40, { anchor, spanHours: 20, lateFraction: 0, lateMinutes: [2, 30], lateRelease: { fraction: 1, byMs, releaseAt } });
    times.forEach((t, i) => assert.deepEqual(t, { createdMs: releaseAt - byMs[i % 2]!, availableAt: releaseAt, late: true }));
  });

  it('picks about the given fraction with the seeded PRNG, the same for the same seed', () => {
    const plan = (seed: number) => planBlobTimes(new Rng(seed), 2000, { anchor, spanHours: 20, lateFraction: 0, lateMinutes: [2, 30], lateRelease: { fraction: 0.1, byMs, releaseAt } });
    const held = plan(5).filter((t) => t.availableAt === releaseAt);
    assert.ok(held.length > 140 && held.length < 260, `${held.length} of 2000`);
    assert.deepEqual(plan(5), plan(5));
    for (const t of plan(5)) if (t.availableAt !== releaseAt) assert.ok(t.availableAt <= anchor && t.createdMs === t.availableAt);
  });
});

describe('simulate flags', () => {
  const base: SimulateArgs = { port: 0, seed: 1, records: 100, span: 20, late: 0 };
  const problem = (a: Partial<SimulateArgs>): string => {
    try {
      simulatorOptions({ ...base, ...a });
    } catch (err) {
      assert.ok(err instanceof CollectorError);
      assert.equal(err.code, 'CONFIG_INVALID');
      return err.message;
    }
    return 'accepted';
  };

  it('turns --fault, --slow-ms, --retry-after, --clock-offset and the late release into options', () => {
    const o = simulatorOptions({ ...base, faults: ['slow@list', '429:2', 'subscription-disabled'], slowMs: 50, retryAfter: 3, clockOffset: '-3d', late: 0.1, lateBy: ['30h,6d'], lateRelease: 20 });
    assert.deepEqual(o.faults, [
      { kind: 'slow', route: 'list', count: 1, delayMs: 50 },
      { kind: '429', route: 'any', count: 2, retryAfterSeconds: 3 },
      { kind: 'subscription-disabled', route: 'content', count: 1 },
    ]);
    assert.equal(o.clockOffsetMs, -3 * 24 * HOUR);
    assert.deepEqual(o.lateRelease, { fraction: 0.1, byMs: [30 * HOUR, 6 * 24 * HOUR], releaseAfterMs: 20_000 });
    assert.equal(o.lateFraction, 0, 'the minutes-late mode is off with a late release');
    assert.equal(simulatorOptions({ ...base, late: 0.2 }).lateFraction, 0.2, '--late alone keeps its meaning');
    assert.equal(simulatorOptions({ ...base, lateBy: ['1h', '2h'], lateRelease: 0, late: 1 }).lateRelease?.byMs.length, 2, 'repeated --late-by');
  });

  const refused: [Partial<SimulateArgs>, RegExp][] = [
    [{ faults: ['418'] }, /^--fault '418': unknown kind '418' \(one of 429, /],
    [{ faults: ['500@nowhere'] }, /^--fault '500@nowhere': unknown route 'nowhere' \(one of token, list, content, blob, start, any\)$/],
    [{ faults: ['500:0'] }, /^--fault '500:0': COUNT must be a positive integer/],
    [{ slowMs: -1 }, /^--slow-ms must be/],
    [{ retryAfter: 1.5 }, /^--retry-after must be/],
    [{ clockOffset: 'soon' }, /^--clock-offset must be a duration with an optional sign/],
    [{ late: 0.1, lateBy: ['8d'], lateRelease: 20 }, /^--late-by 8d is too far back: at most 6d23h50m/],
    [{ late: 0.1, lateBy: ['0s'], lateRelease: 20 }, /^--late-by '0s' is not a positive duration/],
    [{ late: 0.1, lateBy: ['30h'] }, /^--late-by needs --late-release SECONDS/],
    [{ late: 0.1, lateRelease: 20 }, /^--late-release needs --late-by/],
    [{ late: 0, lateBy: ['30h'], lateRelease: 20 }, /^--late-by\/--late-release need --late FRACTION above 0/],
    [{ late: 0.1, lateBy: ['30h'], lateRelease: -1 }, /^--late-release must be a number of seconds >= 0/],
  ];
  for (const [args, re] of refused) it(`refuses ${JSON.stringify(args)}`, () => assert.match(problem(args), re));

  it('parses signed durations with the config units', () => {
    assert.equal(parseSignedDuration('-2h'), -2 * HOUR);
    assert.equal(parseSignedDuration('+90s'), 90_000);
    assert.equal(parseSignedDuration('3d'), 3 * 24 * HOUR);
    assert.equal(parseSignedDuration('0'), 0);
    for (const bad of ['--2h', '2 hours', '', '-']) assert.equal(parseSignedDuration(bad), undefined, bad);
  });

  it('says in one line when the port is taken', () => {
    const err = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:4000'), { code: 'EADDRINUSE' });
    assert.equal(listenFailure(err, '127.0.0.1', 4000), 'cannot listen on 127.0.0.1:4000: port in use (EADDRINUSE); choose another --port or 0');
    assert.equal(listenFailure(new Error('other'), '127.0.0.1', 4000), undefined);
  });
});

describe('many tenants: --fault KIND[@ROUTE][:COUNT][@TENANT_INDEX]', () => {
  const good: [string, object][] = [
    ['403-AF429@any:100000@7', { kind: '403-AF429', route: 'any', count: 100000, tenant: 7 }],
    ['403-AF429@content:3@2', { kind: '403-AF429', route: 'content', count: 3, tenant: 2 }],
    ['500@blob@1', { kind: '500', route: 'blob', count: 1, tenant: 1 }],
    ['500:4@3', { kind: '500', route: 'any', count: 4, tenant: 3 }],
    // No route is a number: a lone `@N` is the tenant, on the kind's default route.
    ['500@7', { kind: '500', route: 'any', count: 1, tenant: 7 }],
    ['truncate@12', { kind: 'truncate', route: 'blob', count: 1, tenant: 12 }],
    ['subscription-disabled@list:2@50', { kind: 'subscription-disabled', route: 'list', count: 2, tenant: 50 }],
  ];
  for (const [text, fault] of good) {
    it(`parses ${text}, and formats it back`, () => {
      const r = parseFaultSpec(text, { tenants: 50 });
      assert.deepEqual(r, { fault });
      assert.ok('fault' in r);
      assert.deepEqual(parseFaultSpec(formatFault(r.fault), { tenants: 50 }), r);
    });
  }
  it('formats a fault without an index as before', () => {
    assert.equal(formatFault({ kind: '500', route: 'any', count: 1 }), '500@any:1');
    assert.equal(formatFault({ kind: '500', route: 'any', count: 1, tenant: 9 }), '500@any:1@9');
  });

  const bad: [string, number | undefined, RegExp][] = [
    ['500@any:1@0', 50, /^'500@any:1@0': TENANT_INDEX must be a tenant index from 1 to 50 \(the tenants served\), got '0'$/],
    ['500@51', 50, /TENANT_INDEX must be a tenant index from 1 to 50 .*got '51'$/],
    ['500@2', 1, /TENANT_INDEX must be a tenant index, 1 \(the simulator serves one tenant; see --tenants\), got '2'$/],
    ['500@content@-1', 50, /TENANT_INDEX must be .*got '-1'$/],
    ['500@content:2@1.5', 50, /TENANT_INDEX must be .*got '1.5'$/],
    ['500@3x', 50, /TENANT_INDEX must be .*got '3x'$/],
    ['500@7:3', 50, /TENANT_INDEX must be .*got '7:3'$/],
    ['500@any:1@0', undefined, /TENANT_INDEX must be a tenant index, a whole number from 1, got '0'$/],
    // Not an index (no digit): the old route error, as before.
    ['500@blob@list', 50, /unknown route 'blob@list'/],
    ['500@any:x@3', 50, /COUNT must be a positive integer, got 'x'/],
  ];
  for (const [text, tenants, re] of bad) {
    it(`refuses ${JSON.stringify(text)} with ${tenants ?? 'no'} tenant count`, () => {
      const r = parseFaultSpec(text, { tenants });
      assert.ok('problem' in r, `accepted ${text}`);
      assert.match(r.problem, re);
    });
  }
  it('accepts any index from 1 when the tenant count is not known', () => {
    assert.deepEqual(parseFaultSpec('500@999'), { fault: { kind: '500', route: 'any', count: 1, tenant: 999 } });
  });

  it('hits only the tenant a fault names; one without an index hits any tenant, its count shared', () => {
    const q = new FaultQueue(3);
    q.inject({ kind: '500', route: 'content', count: 2, tenant: 2 });
    q.inject({ kind: '503', route: 'any', count: 2 });
    assert.equal(q.take('content', undefined, 1)?.kind, '503', 'tenant 1 is not hit by tenant 2\'s fault');
    assert.equal(q.take('content', undefined, 2)?.kind, '500');
    assert.equal(q.take('content', undefined, undefined)?.kind, '503', 'a request of no tenant of ours: only an index-less fault');
    assert.equal(q.take('content', undefined, 3), null, 'the shared count is spent');
    assert.equal(q.take('content', undefined, undefined), null, 'never an indexed fault for no tenant');
    assert.deepEqual(q.armed(), [{ kind: '500', route: 'content', count: 1, tenant: 2 }]);
    assert.equal(q.take('content', undefined, 2)?.kind, '500');
  });

  it('refuses to arm a fault for a tenant it does not serve', () => {
    assert.throws(() => new FaultQueue(3).inject({ kind: '500', route: 'any', count: 1, tenant: 4 }), /^Error: injectFault: tenant must be a tenant index from 1 to 3 \(the tenants served\), got 4$/);
    assert.throws(() => new FaultQueue().inject({ kind: '500', route: 'any', count: 1, tenant: 2 }), /tenant must be a tenant index, 1 /);
    assert.equal(faultProblem({ kind: '500', route: 'any', count: 1, tenant: 3 }, 3), null);
    assert.match(faultProblem({ kind: '500', route: 'any', count: 1, tenant: 0 }) ?? '', /tenant must be a tenant index, a whole number from 1, got 0/);
  });
});

describe('many tenants: seeds, names and the directory', () => {
  it('tenant 1 keeps the seed; the others get their own, the same every time', () => {
    assert.equal(tenantSeed(8, 1), 8);
    assert.equal(tenantSeed(-3, 1), -3);
    const seeds = Array.from({ length: 500 }, (_, i) => tenantSeed(8, i + 1));
    assert.equal(new Set(seeds).size, 500);
    assert.deepEqual(seeds, Array.from({ length: 500 }, (_, i) => tenantSeed(8, i + 1)));
    for (const s of seeds) assert.ok(Number.isSafeInteger(s), String(s));
    assert.notEqual(tenantSeed(8, 2), tenantSeed(9, 2), 'another seed, other tenants');
  });

  it('names tenants simulator (one), sim-01..sim-NN (several), padded to the count', () => {
    assert.equal(simulatorTenantName(1, 1), 'simulator');
    assert.equal(simulatorTenantName(1, 2), 'sim-01');
    assert.equal(simulatorTenantName(50, 50), 'sim-50');
    assert.equal(simulatorTenantName(7, 120), 'sim-007');
  });

  const state = (index: number, tenantId: string): TenantState => ({ index, token: { tenantId } as TenantState['token'], api: {} as TenantState['api'], quota: null, stats: emptyTenantStats() });

  it('finds a tenant by id without case, for discovery by its authorization_endpoint, and refuses a shared id', () => {
    const a = state(1, 'AAAAAAAA-0000-4000-8000-000000000001');
    const b = state(2, 'bbbbbbbb-0000-4000-8000-000000000002');
    const d = new TenantDirectory([a, b]);
    assert.equal(d.first, a);
    assert.equal(d.find('aaaaaaaa-0000-4000-8000-000000000001'), a);
    assert.equal(d.find('BBBBBBBB-0000-4000-8000-000000000002'), b);
    assert.equal(d.find('cccccccc-0000-4000-8000-000000000003'), undefined);
    const discovery = (v?: string) => d.forDiscovery(new Map(v === undefined ? [] : [['authorization_endpoint', v]]));
    assert.equal(discovery('https://127.0.0.1:1/bbbbbbbb-0000-4000-8000-000000000002/oauth2/v2.0/authorize'), b);
    assert.equal(discovery('https://127.0.0.1:1/common/oauth2/v2.0/authorize'), undefined);
    assert.equal(discovery('not a url'), undefined);
    assert.equal(discovery(), undefined);
    assert.throws(() => new TenantDirectory([a, state(2, a.token.tenantId.toLowerCase())]), /two tenants share the tenant id/);
  });

  it('writes one config entry per tenant, with its own credentials, beside the shared endpoints', () => {
    const app = (n: number) => ({ tenantId: `t-${n}`, clientId: `c-${n}`, clientSecret: `s-${n}` });
    const one = simulatorConfigTree({ apiUrl: 'https://h:1', loginUrl: 'https://h:1', ...app(1), caFile: '/ca.pem' }, { spanHours: 20, statePath: '/s.json' });
    assert.deepEqual(one.tenants, [{ name: 'simulator', tenant_id: 't-1', client_id: 'c-1', client_secret: 's-1', api_url: 'https://h:1', login_url: 'https://h:1' }]);
    const tree = simulatorConfigTree({ apiUrl: 'https://h:1', loginUrl: 'https://h:1', ...app(1), caFile: '/ca.pem', tenants: [app(1), app(2), app(3)] }, { spanHours: 20, statePath: '/s.json' });
    const tenants = tree.tenants as Record<string, string>[];
    assert.deepEqual(tenants.map((t) => [t.name, t.tenant_id, t.client_id, t.client_secret]), [
      ['sim-01', 't-1', 'c-1', 's-1'],
      ['sim-02', 't-2', 'c-2', 's-2'],
      ['sim-03', 't-3', 'c-3', 's-3'],
    ]);
    for (const t of tenants) assert.deepEqual([t.api_url, t.login_url], ['https://h:1', 'https://h:1']);
  });

  describe('simulate --tenants', () => {
    const base: SimulateArgs = { port: 0, seed: 1, records: 100, span: 20, late: 0 };
    const problem = (a: Partial<SimulateArgs>): string => {
      try {
        simulatorOptions({ ...base, ...a });
      } catch (err) {
        assert.ok(err instanceof CollectorError);
        return err.message;
      }
      return 'accepted';
    };
    it('passes --tenants and indexed faults on; one tenant adds nothing to the options', () => {
      const o = simulatorOptions({ ...base, tenants: 50, writeConfig: '/tmp/x.yaml', faults: ['403-AF429@content:100000@7'] });
      assert.equal(o.tenants, 50);
      assert.deepEqual(o.faults, [{ kind: '403-AF429', route: 'content', count: 100000, tenant: 7 }]);
      assert.equal('tenants' in simulatorOptions({ ...base, tenants: 1 }), false);
      assert.equal('tenants' in simulatorOptions(base), false);
    });
    const refused: [Partial<SimulateArgs>, RegExp][] = [
      [{ tenants: 0, writeConfig: 'x' }, /^--tenants must be a whole number from 1 to 1000, got 0$/],
      [{ tenants: 2.5, writeConfig: 'x' }, /^--tenants must be a whole number from 1 to 1000, got 2.5$/],
      [{ tenants: 1001, writeConfig: 'x' }, /^--tenants must be a whole number from 1 to 1000/],
      [{ tenants: 3 }, /^--tenants above 1 needs --write-config FILE: every tenant's secret is written there, not printed$/],
      [{ tenants: 3, writeConfig: 'x', faults: ['500@4'] }, /^--fault '500@4': TENANT_INDEX must be a tenant index from 1 to 3 \(the tenants served\), got '4'$/],
      [{ faults: ['500@2'] }, /^--fault '500@2': TENANT_INDEX must be a tenant index, 1 \(the simulator serves one tenant; see --tenants\), got '2'$/],
      [{ tenants: 1000, records: 5001, writeConfig: 'x' }, /^--tenants 1000 x --records 5001 is over 5000000 records in all/],
    ];
    for (const [args, re] of refused) it(`refuses ${JSON.stringify(args)}`, () => assert.match(problem(args), re));
  });
});
