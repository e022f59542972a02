/** Pure rules of the simulator: time parsing, window validation, paging tokens, listing, assertions. */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { checkClientAssertion, JtiStore, type RegisteredCertificate } from '../../src/simulator/assertion.ts';
import { ContentStore, makeContentId } from '../../src/simulator/content-store.ts';
import { serialiseRecords } from '../../src/simulator/corpus.ts';
import { RequestQuota } from '../../src/simulator/faults.ts';
import { decodePageToken, encodePageToken } from '../../src/simulator/paging.ts';
import { classify, queryParams } from '../../src/simulator/routes.ts';
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
    const store = new ContentStore('https://x/api/v1.0/t/activity/feed', 'emea0036', 2 * HOUR, serialiseRecords);
    const a = store.add('Audit.General', now - 3 * HOUR, now - 3 * HOUR, [{ n: 1 }]); // expired at now - 1 h
    const b = store.add('Audit.General', now - HOUR, now - 10 * 60_000, [{ n: 2 }]); // late, listed
    const c = store.add('Audit.General', now - 50 * 60_000, now - 50 * 60_000, [{ n: 3 }]);
    const d = store.add('Audit.General', now - 30 * 60_000, now + 60_000, [{ n: 4 }]); // not yet listed
    store.add('Audit.Exchange', now - HOUR, now - HOUR, [{ n: 5 }]);
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
    assert.deepEqual(JSON.parse(refused!.body), { error: { code: 'AF429', message: 'Too many requests. Method=GetBlob, PublisherId=pub' } });
    assert.equal(q.check('content', undefined, t + 3), null, 'another pool');
    assert.equal(q.check('blob', 'pub', t + 60_000), null, 'next minute');
  });
});
