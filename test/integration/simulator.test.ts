/**
 * The embedded Management API simulator over real HTTPS on loopback: Entra token endpoints driven by
 * the real @azure/msal-node, the API's subscription/listing/blob rules, lateness, expiry and faults.
 * Run: node --import tsx --test test/integration/simulator.test.ts
 */
import assert from 'node:assert/strict';
import { randomUUID, createPrivateKey, createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfidentialClientApplication, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import fetch from 'node-fetch';
import {
  contentTypeForRecord,
  generateClientCertificate,
  parseCorpus,
  startSimulator,
  type SimBlob,
  type Simulator,
} from '../../src/simulator/index.ts';
import { signJwt } from '../../src/simulator/jwt.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MANAGE = 'https://manage.office.com';
const HOUR = 3_600_000;

/** MSAL's network client: node-fetch through an agent that trusts the simulator's CA. */
class CaTrustingNetworkClient implements INetworkModule {
  constructor(private readonly agent: https.Agent) {}

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('GET', url, options);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('POST', url, options);
  }

  private async send<T>(method: string, url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const res = await fetch(url, { method, headers: options?.headers, body: options?.body, agent: this.agent });
    const text = await res.text();
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      headers[k.toLowerCase()] = v;
    });
    let body: unknown = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = { error: 'non_json_response', error_description: text.slice(0, 200) };
    }
    return { status: res.status, headers, body: body as T };
  }
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

/** Plain HTTPS client for the API tests (node-fetch + CA agent). */
function client(sim: Simulator, agent: https.Agent) {
  async function call(method: string, url: string, opts: { token?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
    const res = await fetch(url, { method, headers, body: opts.body, agent });
    const text = await res.text();
    const h: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      h[k.toLowerCase()] = v;
    });
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: h, text, json };
  }
  const form = (o: Record<string, string>) => ({
    body: new URLSearchParams(o).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const tokenUrl = `${sim.loginUrl}/${sim.tenantId}/oauth2/v2.0/token`;
  return {
    call,
    tokenUrl,
    root: `${sim.apiUrl}/api/v1.0/${sim.tenantId}/activity/feed`,
    postToken: (o: Record<string, string>, url = tokenUrl) => call('POST', url, form(o)),
    /** A fresh access token by client secret (issued at the simulator's current time). */
    async token(): Promise<string> {
      const r = await call('POST', tokenUrl, form({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${MANAGE}/.default` }));
      assert.equal(r.status, 200, r.text);
      return r.json.access_token as string;
    },
  };
}

function b64urlHex(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64url');
}

/** A client assertion built by hand, to exercise what MSAL would never send. */
function assertion(o: { keyPem: string; certPem: string; clientId: string; aud: string; jti?: string; alg?: 'RS256' | 'PS256'; nowS?: number }): string {
  const der = new X509Certificate(o.certPem).raw;
  const nowS = o.nowS ?? Math.floor(Date.now() / 1000);
  return signJwt(
    { alg: o.alg ?? 'RS256', typ: 'JWT', 'x5t#S256': b64urlHex(createHash('sha256').update(der).digest('hex')) },
    { aud: o.aud, iss: o.clientId, sub: o.clientId, jti: o.jti ?? randomUUID(), nbf: nowS, exp: nowS + 600 },
    createPrivateKey(o.keyPem),
  );
}

const assertionForm = (clientId: string, jwt: string) => ({
  grant_type: 'client_credentials',
  client_id: clientId,
  scope: `${MANAGE}/.default`,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: jwt,
});

const unknownRequests: string[] = [];

describe('management API simulator', () => {
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  let offsetMs = 0; // the simulator clock = wall clock + offset, unless frozen
  let frozenAt: number | null = null;
  let registered: Awaited<ReturnType<typeof generateClientCertificate>>;
  let stranger: Awaited<ReturnType<typeof generateClientCertificate>>;

  before(async () => {
    [registered, stranger] = await Promise.all([generateClientCertificate({ commonName: 'registered' }), generateClientCertificate({ commonName: 'stranger' })]);
    sim = await startSimulator({
      seed: 7,
      records: 3000,
      pageSize: 16,
      lateFraction: 0.3,
      lateMinutes: [5, 40],
      now: () => frozenAt ?? Date.now() + offsetMs,
      clientCertificates: [registered.certPem],
      // Loud, and collected: a test that hits a path the simulator lacks must show it.
      onUnknownRequest: (m, u) => {
        unknownRequests.push(`${m} ${u}`);
        process.stderr.write(`[simulator test] UNKNOWN REQUEST ${m} ${u}\n`);
      },
    });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
  });

  after(async () => {
    agent.destroy();
    await sim.close();
  });

  describe('token endpoint with real msal-node', () => {
    const msalConfig = (extra: object) => ({
      auth: {
        clientId: sim.clientId,
        authority: `${sim.loginUrl}/${sim.tenantId}`,
        knownAuthorities: [new URL(sim.loginUrl).host],
        ...extra,
      },
      system: { networkClient: new CaTrustingNetworkClient(agent) },
    });

    it('issues a token for a client secret, and the API accepts it', async () => {
      const before = unknownRequests.length;
      const app = new ConfidentialClientApplication(msalConfig({ clientSecret: sim.clientSecret }));
      const result = await app.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] });
      assert.ok(result?.accessToken);
      const claims = JSON.parse(Buffer.from(result.accessToken.split('.')[1]!, 'base64url').toString());
      assert.equal(claims.tid, sim.tenantId);
      assert.equal(claims.appid, sim.clientId);
      assert.equal(claims.aud, MANAGE);
      assert.deepEqual(claims.roles, ['ActivityFeed.Read', 'ActivityFeed.ReadDlp']);
      const r = await c.call('GET', `${c.root}/subscriptions/list`, { token: result.accessToken });
      assert.equal(r.status, 200, r.text);
      assert.equal(unknownRequests.length, before, `MSAL asked for paths the simulator lacks: ${unknownRequests.join(', ')}`);
    });

    it('issues a token for a certificate (x5t#S256 / PS256, with and without x5c)', async () => {
      const app = new ConfidentialClientApplication(
        msalConfig({ clientCertificate: { thumbprintSha256: registered.thumbprintSha256, privateKey: registered.keyPem } }),
      );
      const result = await app.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] });
      assert.ok(result?.accessToken);
      const withX5c = new ConfidentialClientApplication(
        msalConfig({ clientCertificate: { thumbprintSha256: registered.thumbprintSha256, privateKey: registered.keyPem, x5c: registered.certPem } }),
      );
      assert.ok((await withX5c.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] }))?.accessToken);
    });

    it('issues a token for a certificate by SHA-1 thumbprint (x5t / RS256)', async () => {
      const app = new ConfidentialClientApplication(
        msalConfig({ clientCertificate: { thumbprint: registered.thumbprintSha1, privateKey: registered.keyPem } }),
      );
      assert.ok((await app.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] }))?.accessToken);
    });

    it('surfaces a wrong secret to MSAL as invalid_client AADSTS7000215', async () => {
      const app = new ConfidentialClientApplication(msalConfig({ clientSecret: 'not-the-secret' }));
      await assert.rejects(app.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] }), (err: Error & { errorCode?: string }) => {
        assert.equal(err.errorCode, 'invalid_client');
        assert.match(err.message, /AADSTS7000215/);
        return true;
      });
    });
  });

  describe('token endpoint rules', () => {
    it('rejects a wrong secret with the Entra error shape', async () => {
      const r = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: 'wrong', scope: `${MANAGE}/.default` });
      assert.equal(r.status, 401);
      assert.equal(r.json.error, 'invalid_client');
      assert.deepEqual(r.json.error_codes, [7000215]);
      assert.match(r.json.error_description, /^AADSTS7000215: Invalid client secret provided/);
      for (const k of ['timestamp', 'trace_id', 'correlation_id']) assert.equal(typeof r.json[k], 'string', k);
      assert.ok(!r.text.includes(sim.clientSecret));
    });

    it('rejects an unknown client id (AADSTS700016) and an unknown tenant (AADSTS90002)', async () => {
      const r = await c.postToken({ grant_type: 'client_credentials', client_id: randomUUID(), client_secret: sim.clientSecret, scope: `${MANAGE}/.default` });
      assert.equal(r.status, 400);
      assert.equal(r.json.error, 'unauthorized_client');
      assert.deepEqual(r.json.error_codes, [700016]);
      const t = await c.postToken(
        { grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${MANAGE}/.default` },
        `${sim.loginUrl}/${randomUUID()}/oauth2/v2.0/token`,
      );
      assert.deepEqual(t.json.error_codes, [90002]);
    });

    it('requires a /.default scope on v2 and a known resource', async () => {
      const bad = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${MANAGE}/ActivityFeed.Read` });
      assert.equal(bad.json.error, 'invalid_scope');
      const other = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: 'https://graph.microsoft.com/.default' });
      assert.equal(other.json.error, 'invalid_resource');
      const own = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${sim.apiUrl}/.default` });
      assert.equal(own.status, 200);
    });

    it('answers v1 (resource=) with string-typed numbers, ignoring ?api-version', async () => {
      const r = await c.postToken(
        { grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, resource: MANAGE },
        `${sim.loginUrl}/${sim.tenantId}/oauth2/token?api-version=1.0`,
      );
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.token_type, 'Bearer');
      assert.equal(r.json.expires_in, '3599');
      assert.equal(r.json.resource, MANAGE);
      assert.equal(typeof r.json.expires_on, 'string');
      assert.equal(typeof r.json.not_before, 'string');
    });

    it('rejects an assertion signed by an unregistered certificate (AADSTS700027)', async () => {
      const jwt = assertion({ keyPem: stranger.keyPem, certPem: stranger.certPem, clientId: sim.clientId, aud: c.tokenUrl });
      const r = await c.postToken(assertionForm(sim.clientId, jwt));
      assert.equal(r.status, 401);
      assert.deepEqual(r.json.error_codes, [700027]);
    });

    it('rejects a registered thumbprint with a signature from another key (AADSTS7000274)', async () => {
      // Header names the registered certificate, signature made with the stranger's key.
      const jwt = assertion({ keyPem: stranger.keyPem, certPem: registered.certPem, clientId: sim.clientId, aud: c.tokenUrl });
      const r = await c.postToken(assertionForm(sim.clientId, jwt));
      assert.equal(r.status, 401);
      assert.deepEqual(r.json.error_codes, [7000274]);
    });

    it('accepts RS256 and PS256 assertions, the same one re-sent (msal-node caches it), and refuses a jti reused by another assertion', async () => {
      for (const alg of ['RS256', 'PS256'] as const) {
        const jti = randomUUID();
        const jwt = assertion({ keyPem: registered.keyPem, certPem: registered.certPem, clientId: sim.clientId, aud: c.tokenUrl, alg, jti });
        const first = await c.postToken(assertionForm(sim.clientId, jwt));
        assert.equal(first.status, 200, first.text);
        const again = await c.postToken(assertionForm(sim.clientId, jwt));
        assert.equal(again.status, 200, again.text);
        const forged = assertion({ keyPem: registered.keyPem, certPem: registered.certPem, clientId: sim.clientId, aud: c.tokenUrl, alg, jti, nowS: Math.floor(Date.now() / 1000) - 5 });
        const replay = await c.postToken(assertionForm(sim.clientId, forged));
        assert.equal(replay.status, 401);
        assert.deepEqual(replay.json.error_codes, [700025]);
      }
    });

    it('rejects an assertion for another audience (AADSTS700212) or outside its time range (AADSTS700024)', async () => {
      const wrongAud = assertion({ keyPem: registered.keyPem, certPem: registered.certPem, clientId: sim.clientId, aud: `https://login.microsoftonline.com/${sim.tenantId}/oauth2/v2.0/token` });
      assert.deepEqual((await c.postToken(assertionForm(sim.clientId, wrongAud))).json.error_codes, [700212]);
      const old = assertion({ keyPem: registered.keyPem, certPem: registered.certPem, clientId: sim.clientId, aud: c.tokenUrl, nowS: Math.floor(Date.now() / 1000) - 3600 });
      assert.deepEqual((await c.postToken(assertionForm(sim.clientId, old))).json.error_codes, [700024]);
    });

    it('registers a certificate at runtime', async () => {
      const jwt = assertion({ keyPem: stranger.keyPem, certPem: stranger.certPem, clientId: sim.clientId, aud: c.tokenUrl });
      sim.registerCertificate(stranger.certPem);
      assert.equal((await c.postToken(assertionForm(sim.clientId, jwt))).status, 200);
    });
  });

  describe('API: authorization and subscriptions', () => {
    it('answers 401 without a usable token, and AF20010 for another tenant', async () => {
      const none = await c.call('GET', `${c.root}/subscriptions/list`);
      assert.equal(none.status, 401);
      assert.match(none.headers['www-authenticate'] ?? '', /error="invalid_token"/);
      const forged = await c.call('GET', `${c.root}/subscriptions/list`, { token: 'a.b.c' });
      assert.equal(forged.status, 401);
      const token = await c.token();
      const other = await c.call('GET', `${sim.apiUrl}/api/v1.0/${randomUUID()}/activity/feed/subscriptions/list`, { token });
      assert.equal(other.status, 401);
      assert.equal(other.json.error.code, 'AF20010');
    });

    it('follows the subscription life cycle: AF20022, start, AF20024, list, stop, AF20023', async () => {
      const token = await c.token();
      const ct = 'Audit.Exchange';
      const before = await c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token });
      assert.equal(before.status, 400);
      assert.equal(before.json.error.code, 'AF20022');
      assert.equal(before.headers['content-type'], 'application/json; charset=utf-8');
      const start = await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}&PublisherIdentifier=${sim.tenantId}`, { token, body: '' });
      assert.equal(start.status, 200);
      assert.deepEqual(start.json, { contentType: ct, status: 'enabled', webhook: null });
      const again = await c.call('POST', `${c.root}/subscriptions/start?contenttype=${ct}`, { token, body: '{}' });
      assert.equal(again.status, 400);
      assert.deepEqual(again.json, { error: { code: 'AF20024', message: 'The subscription is already enabled. No property change.' } });
      const bad = await c.call('POST', `${c.root}/subscriptions/start?contentType=Audit.Nope`, { token });
      assert.equal(bad.json.error.code, 'AF20020');
      assert.deepEqual((await c.call('GET', `${c.root}/subscriptions/list`, { token })).json, [{ contentType: ct, status: 'enabled', webhook: null }]);
      const stop = await c.call('POST', `${c.root}/subscriptions/stop?contentType=${ct}`, { token });
      assert.equal(stop.status, 200);
      assert.equal(stop.text, '');
      assert.deepEqual((await c.call('GET', `${c.root}/subscriptions/list`, { token })).json, [{ contentType: ct, status: 'disabled', webhook: null }]);
      const disabled = await c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token });
      assert.equal(disabled.json.error.code, 'AF20023');
    });
  });

  describe('API: content listing', () => {
    const ct = 'Audit.General';
    let token: string;
    before(async () => {
      token = await c.token();
      const r = await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token });
      assert.equal(r.status, 200, r.text);
    });

    const list = (q: string) => c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}&${q}`, { token });
    const iso = (ms: number) => new Date(ms).toISOString();

    it('enforces the window rules with AF20055', async () => {
      const now = Date.now() + offsetMs;
      const cases = {
        '25 h apart': `startTime=${iso(now - 26 * HOUR)}&endTime=${iso(now - HOUR)}`,
        '8 days back': `startTime=${iso(now - 8 * 24 * HOUR)}&endTime=${iso(now - 8 * 24 * HOUR + HOUR)}`,
        'start = end': `startTime=${iso(now - HOUR)}&endTime=${iso(now - HOUR)}`,
        'start > end': `startTime=${iso(now - HOUR)}&endTime=${iso(now - 2 * HOUR)}`,
        'only start': `startTime=${iso(now - HOUR)}`,
        'only end': `endTime=${iso(now - HOUR)}`,
      };
      for (const [name, q] of Object.entries(cases)) {
        const r = await list(q);
        assert.equal(r.status, 400, name);
        assert.equal(r.json.error.code, 'AF20055', name);
      }
      const garbage = await list('startTime=yesterday&endTime=today');
      assert.equal(garbage.status, 400);
      assert.equal(garbage.json.error.code, 'AF20002');
    });

    it('accepts the documented time formats, with or without fraction and Z', async () => {
      const d = new Date(Date.now() + offsetMs - 2 * HOUR);
      const day = d.toISOString().slice(0, 10);
      const hm = d.toISOString().slice(0, 16);
      const hms = d.toISOString().slice(0, 19);
      const end = new Date(Date.now() + offsetMs).toISOString();
      for (const start of [hm, hms, `${hms}Z`, `${hms}.123`, d.toISOString()]) {
        const r = await list(`startTime=${start}&endTime=${end}`);
        assert.equal(r.status, 200, `${start}: ${r.text}`);
      }
      const today = new Date(Date.now() + offsetMs).toISOString().slice(0, 10);
      if (day !== today) assert.equal((await list(`startTime=${day}&endTime=${today}`)).status, 200);
    });

    /** Follow NextPageUri verbatim to the end; returns all items and the page count. */
    async function listAll(first: string): Promise<{ items: any[]; pages: number }> {
      const items: any[] = [];
      let pages = 0;
      let url: string | undefined = first;
      while (url) {
        const r = await c.call('GET', url, { token });
        assert.equal(r.status, 200, r.text);
        assert.ok(Array.isArray(r.json));
        assert.ok(r.json.length <= 16);
        items.push(...r.json);
        pages += 1;
        url = r.headers['nextpageuri'];
        if (url) {
          const u = new URL(url);
          assert.ok(u.searchParams.get('nextPage'));
        }
      }
      return { items, pages };
    }

    it('pages with NextPageUri and lists every listable blob exactly once, in availability order', async () => {
      const now = Date.now() + offsetMs;
      const start = now - 24 * HOUR;
      const { items, pages } = await listAll(`${c.root}/subscriptions/content?CONTENTTYPE=${ct}&starttime=${iso(start)}&EndTime=${iso(now)}&PublisherIdentifier=${sim.tenantId}`);
      const expected = sim
        .blobs()
        .filter((b) => b.contentType === ct && Date.parse(b.contentCreated) >= start && Date.parse(b.contentCreated) < now && b.availableAt <= now)
        .map((b) => b.contentId)
        .sort();
      assert.ok(pages >= 3, `expected several pages, got ${pages}`);
      const ids = items.map((i) => i.contentId as string);
      assert.equal(new Set(ids).size, ids.length, 'a blob was listed twice');
      assert.deepEqual([...ids].sort(), expected);
      const avail = new Map(sim.blobs().map((b) => [b.contentId, b.availableAt]));
      for (let i = 1; i < ids.length; i++) assert.ok(avail.get(ids[i - 1]!)! <= avail.get(ids[i]!)!, 'not in availability order');
      const it0 = items[0];
      assert.deepEqual(Object.keys(it0), ['contentType', 'contentId', 'contentUri', 'contentCreated', 'contentExpiration']);
      assert.match(it0.contentCreated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.match(it0.contentId, /^\d{23}\$\d{23}\$audit_general\$Audit_General\$[a-z]+\d+$/);
      assert.equal(it0.contentUri, `${c.root}/audit/${it0.contentId}`);
    });

    it('lists the last 24 h when the window is omitted', async () => {
      const { items } = await listAll(`${c.root}/subscriptions/content?contentType=${ct}`);
      const now = Date.now() + offsetMs;
      const expected = sim.blobs().filter((b) => b.contentType === ct && Date.parse(b.contentCreated) >= now - 24 * HOUR && b.availableAt <= now);
      assert.equal(items.length, expected.length);
    });

    it('rejects a bad or foreign nextPage with AF20031', async () => {
      const now = Date.now() + offsetMs;
      const r = await list(`startTime=${iso(now - 20 * HOUR)}&endTime=${iso(now)}&nextPage=2015101900R022885001761`);
      assert.equal(r.status, 400);
      assert.equal(r.json.error.code, 'AF20031');
      const first = await list(`startTime=${iso(now - 20 * HOUR)}&endTime=${iso(now)}`);
      const token2 = new URL(first.headers['nextpageuri']!).searchParams.get('nextPage')!;
      const foreign = await list(`startTime=${iso(now - 19 * HOUR)}&endTime=${iso(now)}&nextPage=${token2}`);
      assert.equal(foreign.json.error.code, 'AF20031');
    });

    it('does not list a late blob before its availableAt, and lists it after', async () => {
      const late = sim.blobs().find((b) => b.contentType === ct && b.availableAt - Date.parse(b.contentCreated) > 5 * 60_000);
      assert.ok(late, 'the seed should produce a late Audit.General blob');
      try {
        const created = Date.parse(late.contentCreated);
        const window = `startTime=${iso(created - HOUR)}&endTime=${iso(created + 1)}`;
        frozenAt = late.availableAt - 1;
        token = await c.token(); // a token issued at the simulator's (earlier) time
        const early = await listAll(`${c.root}/subscriptions/content?contentType=${ct}&${window}`);
        assert.ok(!early.items.some((i) => i.contentId === late.contentId), 'listed before availableAt');
        // Not yet published content cannot be fetched either.
        assert.equal((await c.call('GET', late.contentUri, { token })).json.error.code, 'AF20050');
        frozenAt = late.availableAt;
        const later = await listAll(`${c.root}/subscriptions/content?contentType=${ct}&${window}`);
        assert.ok(later.items.some((i) => i.contentId === late.contentId), 'not listed at availableAt');
      } finally {
        frozenAt = null;
        token = await c.token();
      }
    });

    it('lists records added later (addRecords) once they are available', async () => {
      const now = Date.now() + offsetMs;
      const [blob] = sim.addRecords([{ Id: randomUUID(), Workload: 'PowerBI', Operation: 'ViewReport', RecordType: 20, CreationTime: '2025-01-01T00:00:00' }], {
        contentCreated: now - 60_000,
        availableAt: now + 60_000,
      });
      assert.ok(blob);
      assert.equal(blob.contentType, 'Audit.General');
      const window = `startTime=${iso(now - 2 * 60_000)}&endTime=${iso(now)}`;
      assert.ok(!(await list(window)).json.some((i: any) => i.contentId === blob.contentId));
      offsetMs += 61_000;
      try {
        token = await c.token();
        assert.ok((await list(window)).json.some((i: any) => i.contentId === blob.contentId));
      } finally {
        offsetMs -= 61_000;
        token = await c.token();
      }
    });
  });

  describe('API: content blobs', () => {
    const ct = 'Audit.SharePoint';
    let token: string;
    let blob: SimBlob;
    before(async () => {
      token = await c.token();
      assert.equal((await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token })).status, 200);
      blob = sim.blobs().find((b) => b.contentType === ct && b.records.length > 5)!;
    });

    it('serves the records of a blob, whether $ is raw or percent-encoded', async () => {
      const raw = await c.call('GET', blob.contentUri, { token });
      assert.equal(raw.status, 200);
      assert.deepEqual(raw.json, blob.records);
      const encoded = await c.call('GET', blob.contentUri.replace(/\$/g, '%24'), { token });
      assert.equal(encoded.status, 200);
      assert.equal(encoded.text, raw.text);
    });

    it('answers AF20050 (404) for unknown content and AF20051 once expired', async () => {
      const unknown = await c.call('GET', `${c.root}/audit/20990101000000000000000$20990101000000000000000$audit_sharepoint$Audit_SharePoint$emea0001`, { token });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'AF20050');
      const saved = offsetMs;
      try {
        offsetMs = Date.parse(blob.contentExpiration) - Date.now();
        const t = await c.token();
        const expired = await c.call('GET', blob.contentUri, { token: t });
        assert.equal(expired.status, 400);
        assert.equal(expired.json.error.code, 'AF20051');
      } finally {
        offsetMs = saved;
      }
    });

    it('stamps the Date header from the simulator clock', async () => {
      const saved = offsetMs;
      try {
        offsetMs = -3 * HOUR;
        const r = await c.call('GET', `${sim.loginUrl}/${sim.tenantId}/v2.0/.well-known/openid-configuration`);
        assert.ok(Math.abs(Date.parse(r.headers['date']!) - (Date.now() - 3 * HOUR)) < 5000);
      } finally {
        offsetMs = saved;
      }
    });

  });

  describe('faults', () => {
    const ct = 'Audit.AzureActiveDirectory';
    let token: string;
    let blob: SimBlob;
    before(async () => {
      token = await c.token();
      assert.equal((await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token })).status, 200);
      blob = sim.blobs().find((b) => b.contentType === ct && b.records.length > 3)!;
    });

    it('throttles with 429 + Retry-After and with 403 AF429, for exactly `count` requests', async () => {
      const served = sim.stats().faultsServed;
      sim.injectFault({ route: 'blob', kind: '429', count: 2, retryAfterSeconds: 7 });
      for (let i = 0; i < 2; i++) {
        const r = await c.call('GET', blob.contentUri, { token });
        assert.equal(r.status, 429);
        assert.equal(r.headers['retry-after'], '7');
        assert.equal(r.json.error.code, 'AF429');
      }
      assert.equal((await c.call('GET', blob.contentUri, { token })).status, 200);
      sim.injectFault({ route: 'blob', kind: '403-AF429', count: 1 });
      const f = await c.call('GET', `${blob.contentUri}?PublisherIdentifier=${sim.tenantId}`, { token });
      assert.equal(f.status, 403);
      assert.equal(f.json.error.message, `Too many requests. Method=GetBlob, PublisherId=${sim.tenantId}`);
      assert.equal(sim.stats().faultsServed, served + 3);
    });

    it('serves 500 AF50000 and 503 on listing', async () => {
      sim.injectFault({ route: 'content', kind: '500', count: 1 });
      sim.injectFault({ route: 'content', kind: '503', count: 1 });
      const a = await c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token });
      assert.equal(a.status, 500);
      assert.equal(a.json.error.code, 'AF50000');
      const b = await c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token });
      assert.equal(b.status, 503);
      assert.equal((await c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token })).status, 200);
    });

    it('resets the connection, truncates a body, and answers slowly', async () => {
      sim.injectFault({ route: 'blob', kind: 'reset', count: 1 });
      await assert.rejects(c.call('GET', blob.contentUri, { token }));
      sim.injectFault({ route: 'blob', kind: 'truncate', count: 1 });
      await assert.rejects(c.call('GET', blob.contentUri, { token }));
      // Slow: a request sent after the slowed one is answered first; the slowed one then succeeds.
      sim.injectFault({ route: 'list', kind: 'slow', count: 1, delayMs: 1500 });
      const order: string[] = [];
      const slow = c.call('GET', `${c.root}/subscriptions/list`, { token }).then((r) => (order.push('slow'), r));
      const fast = c.call('GET', blob.contentUri, { token }).then((r) => (order.push('fast'), r));
      const [s, f] = await Promise.all([slow, fast]);
      assert.deepEqual([s.status, f.status], [200, 200]);
      assert.deepEqual(order, ['fast', 'slow']);
    });

    it('expires the presented token (401) and throttles the token endpoint', async () => {
      sim.injectFault({ route: 'any', kind: 'expire-token', count: 1 });
      const r = await c.call('GET', `${c.root}/subscriptions/list`, { token });
      assert.equal(r.status, 401);
      assert.equal((await c.call('GET', `${c.root}/subscriptions/list`, { token })).status, 200);
      sim.injectFault({ route: 'token', kind: '429', count: 1, retryAfterSeconds: 2 });
      const t = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${MANAGE}/.default` });
      assert.equal(t.status, 429);
      assert.equal(t.headers['retry-after'], '2');
      assert.equal(typeof t.json.error, 'string');
    });

    it('rejects malformed faults', () => {
      assert.throws(() => sim.injectFault({ route: 'blob', kind: 'nope' as never, count: 1 }), /unknown kind/);
      assert.throws(() => sim.injectFault({ route: 'blob', kind: '500', count: 0 }), /positive integer/);
    });
  });

  describe('bookkeeping', () => {
    it('answers unknown paths 404 with JSON and counts them', async () => {
      const before = sim.stats().unknownRequests;
      const seen = unknownRequests.length;
      const r = await c.call('GET', `${sim.apiUrl}/api/v1.0/${sim.tenantId}/activity/feed/subscriptions/notifications?contentType=DLP.All`);
      assert.equal(r.status, 404);
      assert.equal(typeof r.json.error.message, 'string');
      assert.equal(sim.stats().unknownRequests, before + 1);
      assert.equal(unknownRequests.length, seen + 1);
      unknownRequests.splice(seen); // expected: keep the list for unexpected ones only
    });

    it('counts requests without PublisherIdentifier, by route', async () => {
      const token = await c.token();
      const s0 = sim.stats();
      await c.call('GET', `${c.root}/subscriptions/list?publisheridentifier=${sim.tenantId}`, { token });
      await c.call('GET', `${c.root}/subscriptions/list`, { token });
      const s1 = sim.stats();
      assert.equal(s1.missingPublisherIdentifier, s0.missingPublisherIdentifier + 1);
      assert.equal(s1.byRoute['list'], (s0.byRoute['list'] ?? 0) + 2);
      assert.ok(s1.tokensIssued > 5);
    });
  });
});

describe('simulator with a corpus', () => {
  const fixture = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'audit-records.ndjson');
  const skip = existsSync(fixture) ? false : `fixture not found at ${fixture} (needs the shared checkout next to the repo)`;

  it('serves the corpus records exactly, grouped by content type', { skip }, async () => {
    const text = readFileSync(fixture, 'utf8');
    const corpus = parseCorpus(text, fixture);
    const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
    assert.equal(corpus.length, lines.length);
    const sim = await startSimulator({ corpus, spanHours: 6 });
    const agent = new https.Agent({ ca: sim.caPem });
    try {
      const c = client(sim, agent);
      const token = await c.token();
      const served: string[] = [];
      const perType = new Map<string, number>();
      for (const b of sim.blobs()) {
        await c.call('POST', `${c.root}/subscriptions/start?contentType=${b.contentType}`, { token });
        const r = await c.call('GET', b.contentUri, { token });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, b.records);
        for (const rec of b.records) assert.equal(contentTypeForRecord(rec), b.contentType);
        perType.set(b.contentType, (perType.get(b.contentType) ?? 0) + b.records.length);
        // Byte-exact: the array's elements are the original lines.
        served.push(r.text.slice(1, -1));
      }
      const joined = served.join(',');
      for (const line of lines) assert.ok(joined.includes(line), `line not served verbatim: ${line.slice(0, 80)}`);
      assert.ok(joined.includes('1156492.00') || !text.includes('1156492.00'));
      assert.equal([...perType.values()].reduce((a, b) => a + b, 0), corpus.length);
      assert.ok((perType.get('DLP.All') ?? 0) > 0);
    } finally {
      agent.destroy();
      await sim.close();
    }
  });

  it('reports a bad corpus line with file:line', () => {
    assert.throws(() => parseCorpus('{"a":1}\n\n{"b":\n', 'x.ndjson'), /^Error: x\.ndjson:3: not valid JSON/);
    assert.throws(() => parseCorpus('{"a":1}\n[1,2]\n', 'y.ndjson'), /y\.ndjson:2: expected one JSON object per line, found an array/);
    assert.throws(() => parseCorpus('"text"', 'z.ndjson'), /z\.ndjson:1: .*found a string/);
    assert.deepEqual(parseCorpus('\n{"a":1}\r\n\n', 'ok.ndjson'), [{ a: 1 }]);
  });
});

describe('simulator shutdown', () => {
  // A close that waited for the slow answer would exceed the test timeout (60 s fault, 10 s limit).
  it('closes with keep-alive connections open and leaves the port closed', { timeout: 10_000 }, async () => {
    const sim = await startSimulator({ records: 10 });
    const agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    const c = client(sim, agent);
    await c.token();
    sim.injectFault({ route: 'token', kind: 'slow', count: 1, delayMs: 60_000 });
    const pending = c.token().catch((e: Error) => e);
    while (sim.stats().faultsServed === 0) await new Promise((r) => setTimeout(r, 10)); // the slow request has arrived
    await sim.close();
    assert.ok((await pending) instanceof Error);
    await assert.rejects(fetch(`${sim.loginUrl}/common/discovery/instance`, { agent: new https.Agent({ ca: sim.caPem }) }), /ECONNREFUSED/);
    agent.destroy();
  });
});

/** Follows NextPageUri to the end of a listing; every page must be a 200 JSON array. */
async function listAll(c: ReturnType<typeof client>, token: string, first: string): Promise<any[]> {
  const items: any[] = [];
  let url: string | undefined = first;
  while (url) {
    const r = await c.call('GET', url, { token });
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json), r.text);
    items.push(...r.json);
    url = r.headers['nextpageuri'];
  }
  return items;
}

const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

describe('faults a proxy or a broken service would serve', () => {
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  let token: string;
  let blob: SimBlob;
  const ct = 'Audit.Exchange';
  before(async () => {
    // One fault armed from the start (SimulatorOptions.faults): the first listing meets it.
    sim = await startSimulator({ seed: 21, records: 800, pageSize: 500, faults: [{ kind: '500', route: 'content', count: 1 }] });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
    token = await c.token();
    assert.equal((await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token })).status, 200);
    blob = sim.blobs().find((b) => b.contentType === ct && b.recordCount > 3)!;
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });
  const listing = () => c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}`, { token });

  it('serves a fault armed at start to the first matching request only', async () => {
    const first = await listing();
    assert.equal(first.status, 500);
    assert.equal(first.json.error.code, 'AF50000');
    assert.equal((await listing()).status, 200);
    assert.equal(sim.stats().faultsServed, 1);
  });

  it('404: a bare 404, empty body, no AF code', async () => {
    sim.injectFault({ kind: '404', route: 'blob', count: 1 });
    const r = await c.call('GET', blob.contentUri, { token });
    assert.equal(r.status, 404);
    assert.equal(r.text, '');
    assert.equal(r.headers['content-type'], undefined);
    assert.equal((await c.call('GET', blob.contentUri, { token })).status, 200);
  });

  it('html: a 502 text/html page, on the token endpoint as on the API', async () => {
    sim.injectFault({ kind: 'html', route: 'any', count: 2 });
    const t = await c.postToken({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: `${MANAGE}/.default` });
    const l = await listing();
    for (const r of [t, l]) {
      assert.equal(r.status, 502);
      assert.equal(r.headers['content-type'], 'text/html');
      assert.match(r.text, /^<html>[\s\S]*Bad Gateway[\s\S]*<\/html>/);
      assert.equal(r.json, undefined, 'not JSON');
    }
    assert.equal((await listing()).status, 200);
  });

  it('not-array: 200 with a JSON object around the records, or around the listing', async () => {
    sim.injectFault({ kind: 'not-array', route: 'blob', count: 1 });
    const r = await c.call('GET', blob.contentUri, { token });
    assert.equal(r.status, 200);
    assert.equal(Array.isArray(r.json), false);
    assert.deepEqual(r.json, { value: blob.records });
    sim.injectFault({ kind: 'not-array', route: 'content', count: 1 });
    const l = await listing();
    assert.equal(l.status, 200);
    assert.ok(!Array.isArray(l.json) && Array.isArray(l.json.value) && l.json.value.length > 0);
    assert.ok(Array.isArray((await listing()).json));
  });

  it('invalid-json: 200 application/json, fully delivered, not JSON', async () => {
    sim.injectFault({ kind: 'invalid-json', route: 'blob', count: 1 });
    const r = await c.call('GET', blob.contentUri, { token });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.text), 'the whole (broken) body arrives: not a truncation');
    assert.throws(() => JSON.parse(r.text), SyntaxError);
    const good = await c.call('GET', blob.contentUri, { token });
    assert.equal(Buffer.byteLength(r.text), Buffer.byteLength(good.text) - 1, 'the real body less its closing bracket');
  });

  it('a body fault never turns a refused request into a 200', async () => {
    sim.injectFault({ kind: 'invalid-json', route: 'blob', count: 1 });
    const r = await c.call('GET', blob.contentUri, { token: 'not.a.token' });
    assert.equal(r.status, 401);
    assert.equal(r.json.Message, 'Authorization has been denied for this request.');
    assert.equal((await c.call('GET', blob.contentUri, { token })).json.length, blob.recordCount, 'the fault was spent on the refused request');
  });
});

describe('subscription-disabled fault', () => {
  let now = Date.now();
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  let token: string;
  before(async () => {
    sim = await startSimulator({ seed: 8, records: 1500, pageSize: 500, now: () => now });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
    token = await c.token();
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });
  const start = (ct: string) => c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token });
  const window = (ct: string, from: number, to: number) => `${c.root}/subscriptions/content?contentType=${ct}&startTime=${iso(from)}&endTime=${iso(to)}`;

  it('waits for an enabled subscription, answers AF20023, and after a restart lists only content from then on', async () => {
    const ct = 'Audit.Exchange';
    const t0 = now;
    assert.equal((await start(ct)).status, 200);
    const before = await listAll(c, token, window(ct, t0 - 22 * HOUR, t0 + HOUR));
    assert.ok(before.length > 0);
    sim.injectFault({ kind: 'subscription-disabled', route: 'content', count: 1 });
    // A listing of a content type never started does not spend it (AF20022 as always).
    const other = await c.call('GET', window('Audit.General', t0 - HOUR, t0), { token });
    assert.equal(other.json.error.code, 'AF20022');
    assert.equal(sim.stats().faultsServed, 0);

    const hit = await c.call('GET', window(ct, t0 - 22 * HOUR, t0 + HOUR), { token });
    assert.equal(hit.status, 400);
    assert.equal(hit.json.error.code, 'AF20023');
    assert.equal(sim.stats().faultsServed, 1);
    assert.deepEqual((await c.call('GET', `${c.root}/subscriptions/list`, { token })).json, [{ contentType: ct, status: 'disabled', webhook: null }]);
    assert.equal((await c.call('GET', before[0].contentUri, { token })).json.error.code, 'AF20023', 'its blobs are out of reach too');
    assert.equal((await c.call('GET', window(ct, t0 - 22 * HOUR, t0 + HOUR), { token })).json.error.code, 'AF20023', 'disabled until restarted');

    now += 60_000;
    assert.equal((await start(ct)).status, 200);
    assert.deepEqual(await listAll(c, token, window(ct, t0 - 22 * HOUR, now + HOUR)), [], 'content from before the restart is gone for good');
    const [fresh] = sim.addRecords([{ Id: randomUUID(), Workload: 'Exchange', Operation: 'Send', RecordType: 2, CreationTime: iso(now - 5000).slice(0, 19) }], { contentCreated: now });
    now += 1000;
    const after = await listAll(c, token, window(ct, t0 - 22 * HOUR, now + HOUR));
    assert.deepEqual(after.map((i) => i.contentId), [fresh!.contentId]);
  });

  it('on the blob route, disables the content type of the blob fetched', async () => {
    const ct = 'Audit.SharePoint';
    assert.equal((await start(ct)).status, 200);
    const blob = sim.blobs().find((b) => b.contentType === ct && b.availableAt <= now)!;
    sim.injectFault({ kind: 'subscription-disabled', route: 'blob', count: 1 });
    const r = await c.call('GET', blob.contentUri, { token });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'AF20023');
    assert.equal((await c.call('GET', window(ct, now - HOUR, now), { token })).json.error.code, 'AF20023');
  });
});

describe('simulator clock offset', () => {
  const local = Date.now();
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  before(async () => {
    sim = await startSimulator({ seed: 3, records: 600, spanHours: 10, now: () => local, clockOffsetMs: -3 * DAY });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });

  it('stamps the Date header and issues tokens from the offset clock', async () => {
    const r = await c.call('GET', `${sim.loginUrl}/common/discovery/instance`);
    assert.equal(r.headers['date'], new Date(local - 3 * DAY).toUTCString());
    assert.equal(sim.now(), local - 3 * DAY);
    const claims = JSON.parse(Buffer.from((await c.token()).split('.')[1]!, 'base64url').toString());
    assert.equal(claims.iat, Math.floor((local - 3 * DAY) / 1000));
  });

  it('applies the window rules against the offset clock', async () => {
    const token = await c.token();
    const ct = 'Audit.General';
    assert.equal((await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token })).status, 200);
    const list = (from: number, to: number) => c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}&startTime=${iso(from)}&endTime=${iso(to)}`, { token });
    const apiNow = local - 3 * DAY;
    // 9 days before the local clock is only 6 days before the API's: accepted.
    assert.equal((await list(local - 9 * DAY, local - 9 * DAY + HOUR)).status, 200);
    // 7 days and a minute before the API's clock: refused, though only 4 days before the local one.
    const old = await list(apiNow - 7 * DAY - 60_000, apiNow - 7 * DAY + HOUR);
    assert.equal(old.status, 400);
    assert.equal(old.json.error.code, 'AF20055');
    // Omitted window = the API's last 24 h, which holds the generated data.
    const items = await listAll(c, token, `${c.root}/subscriptions/content?contentType=${ct}`);
    assert.equal(items.length, sim.blobs().filter((b) => b.contentType === ct).length);
  });

  it('generates the data relative to the offset clock', () => {
    const apiNow = local - 3 * DAY;
    for (const b of sim.blobs()) {
      const created = Date.parse(b.contentCreated);
      assert.ok(created <= apiNow && created >= apiNow - 10 * HOUR, b.contentCreated);
      assert.ok(b.availableAt <= apiNow);
    }
  });
});

describe('late release', () => {
  const t0 = Date.now();
  const releaseAt = t0 + 20_000;
  const byMs = [30 * HOUR, 6 * DAY];
  let now = t0;
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  let token: string;
  let held: SimBlob[];
  before(async () => {
    sim = await startSimulator({ seed: 12, records: 3000, pageSize: 25, now: () => now, lateRelease: { fraction: 0.1, byMs, releaseAfterMs: 20_000 } });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
    token = await c.token();
    for (const ct of ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.SharePoint', 'Audit.General', 'DLP.All']) {
      assert.equal((await c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token })).status, 200);
    }
    held = sim.blobs().filter((b) => b.availableAt > t0);
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });

  /** Every listed contentId of the windows around the two release dates, all content types. */
  async function listedAroundRelease(): Promise<any[]> {
    const out: any[] = [];
    for (const ct of new Set(held.map((b) => b.contentType))) {
      for (const by of byMs) {
        const created = releaseAt - by;
        out.push(...(await listAll(c, token, `${c.root}/subscriptions/content?contentType=${ct}&startTime=${iso(created - HOUR)}&endTime=${iso(created + HOUR)}`)));
      }
    }
    return out;
  }

  it('holds back about the given share of blobs, dated 30 h and 6 days before the release in turn', () => {
    const all = sim.blobs();
    assert.ok(held.length >= all.length * 0.05 && held.length <= all.length * 0.15, `${held.length}/${all.length}`);
    held.forEach((b, i) => {
      assert.equal(b.availableAt, releaseAt);
      assert.equal(b.contentCreated, iso(releaseAt - byMs[i % 2]!));
      assert.equal(b.contentExpiration, iso(releaseAt - byMs[i % 2]! + 7 * DAY));
    });
  });

  it('neither lists nor serves them before the release time', async () => {
    now = releaseAt - 1;
    const listed = new Set((await listedAroundRelease()).map((i) => i.contentId));
    for (const b of held) assert.ok(!listed.has(b.contentId), 'listed before its release');
    const r = await c.call('GET', held[0]!.contentUri, { token });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'AF20050');
  });

  it('lists every one exactly once at the release time, with its contentCreated, and serves its records', async () => {
    now = releaseAt;
    const items = await listedAroundRelease();
    const heldIds = new Set(held.map((b) => b.contentId));
    const ids = items.map((i) => i.contentId).filter((id) => heldIds.has(id));
    assert.equal(ids.length, held.length);
    assert.equal(new Set(ids).size, held.length);
    const byId = new Map(held.map((b) => [b.contentId, b]));
    for (const i of items) if (heldIds.has(i.contentId)) assert.equal(i.contentCreated, byId.get(i.contentId)!.contentCreated);
    for (const b of held.slice(0, 4)) {
      const r = await c.call('GET', b.contentUri, { token });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, b.records);
      for (const rec of r.json) assert.ok(Date.parse(`${rec.CreationTime}Z`) < Date.parse(b.contentCreated), 'events older than their blob');
    }
  });

});

describe('simulator option checks', () => {
  it('refuses a late-release duration beyond the retention, and a fault that could never be served', async () => {
    await assert.rejects(startSimulator({ records: 1, lateRelease: { fraction: 0.5, byMs: [7 * DAY], releaseAfterMs: 0 } }), /lateRelease\.byMs must each be > 0 and at most/);
    await assert.rejects(startSimulator({ records: 1, faults: [{ kind: 'expire-token', route: 'token', count: 1 }] }), /^Error: startSimulator: faults: expire-token@token: kind 'expire-token' cannot hit route 'token'/);
  });
});

describe('API latency and quota (issue 7, bench scenario 3)', () => {
  let sim: Simulator;
  let agent: https.Agent;
  let c: ReturnType<typeof client>;
  let token: string;
  // Long against a loopback round trip (a few ms), so "answered after" is a matter of order here;
  // no duration is asserted.
  const LATENCY_MS = 1500;
  before(async () => {
    sim = await startSimulator({ seed: 31, records: 200, latencyMs: LATENCY_MS });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    c = client(sim, agent);
    token = await c.token();
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });
  const arrivedList = () => sim.stats().byRoute['list'] ?? 0;
  async function untilArrived(n: number): Promise<void> {
    while (arrivedList() < n) await new Promise((r) => setTimeout(r, 5));
  }

  it('answers an API call only after the token endpoint has answered a request sent after it', async () => {
    const order: string[] = [];
    const before = arrivedList();
    const api = c.call('GET', `${c.root}/subscriptions/list`, { token }).then((r) => (order.push('api'), r));
    await untilArrived(before + 1);
    const tok = c.token().then((t) => (order.push('token'), t));
    const [a] = await Promise.all([api, tok]);
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(order, ['token', 'api'], 'the token endpoint is not delayed, the API call is');
  });

  it('holds no event loop: a second API call arrives while the first still waits, and both are answered', async () => {
    const settled: string[] = [];
    const before = arrivedList();
    const first = c.call('GET', `${c.root}/subscriptions/list`, { token }).then((r) => (settled.push('first'), r));
    const second = c.call('GET', `${c.root}/subscriptions/list`, { token }).then((r) => (settled.push('second'), r));
    await untilArrived(before + 2);
    assert.deepEqual(settled, [], 'both arrived before either was answered');
    const replies = await Promise.all([first, second]);
    assert.deepEqual(replies.map((r) => r.status), [200, 200]);
  });

  it('notes when the first and the latest API call arrived', () => {
    const s = sim.stats();
    assert.ok(s.firstApiRequestMs !== null && s.lastApiRequestMs !== null);
    assert.ok(s.firstApiRequestMs <= s.lastApiRequestMs);
  });
});

describe('API quota', () => {
  it('refuses API calls over requestsPerMinute with 403 AF429 and counts them as throttled; the token endpoint is not counted', async () => {
    // The quota counts per minute of the simulator clock: a frozen clock keeps every call in one.
    const sim = await startSimulator({ seed: 32, records: 20, requestsPerMinute: 3, now: () => Date.UTC(2026, 0, 5, 12, 0, 30) });
    const agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
    try {
      const c = client(sim, agent);
      const token = await c.token();
      const list = () => c.call('GET', `${c.root}/subscriptions/list?PublisherIdentifier=${sim.tenantId}`, { token });
      for (let i = 0; i < 3; i++) assert.equal((await list()).status, 200);
      await c.token();
      const refused = await list();
      assert.equal(refused.status, 403);
      assert.equal(refused.json.error.code, 'AF429');
      assert.equal(sim.stats().throttled, 1);
    } finally {
      agent.destroy();
      await sim.close();
    }
  });

  it('simulate --latency-ms and --requests-per-minute become latencyMs and requestsPerMinute; bad values are named', async () => {
    const { simulatorOptions } = await import('../../src/commands/simulate.ts');
    const base = { port: 0, seed: 1, records: 10, span: 20, late: 0 };
    const o = simulatorOptions({ ...base, latencyMs: 150, requestsPerMinute: 2000 });
    assert.equal(o.latencyMs, 150);
    assert.equal(o.requestsPerMinute, 2000);
    const none = simulatorOptions({ ...base, latencyMs: 0 });
    assert.equal(none.latencyMs, undefined);
    assert.equal(none.requestsPerMinute, undefined);
    assert.throws(() => simulatorOptions({ ...base, latencyMs: -1, requestsPerMinute: 0 }), (e: Error) => {
      assert.match(e.message, /--latency-ms must be a whole number of milliseconds from 0 to 60000, got -1/);
      assert.match(e.message, /--requests-per-minute must be a whole number above 0, got 0/);
      return true;
    });
    await assert.rejects(startSimulator({ records: 1, latencyMs: 1.5 }), /latencyMs must be a whole number of ms/);
  });
});

describe('many tenants from one server (issue 8)', () => {
  // A frozen clock: assertions signed for it stay valid, and a quota's minute never ends.
  const FROZEN = Date.UTC(2026, 0, 5, 12, 0, 30);
  let sim: Simulator;
  let agent: https.Agent;
  /** A client of tenant i (1-based), on the shared hosts with its own credentials. */
  const as = (i: number) => {
    const t = sim.tenants[i - 1]!;
    return client({ ...sim, tenantId: t.tenantId, clientId: t.clientId, clientSecret: t.clientSecret }, agent);
  };
  const start = (c: ReturnType<typeof client>, token: string, ct = 'Audit.Exchange') => c.call('POST', `${c.root}/subscriptions/start?contentType=${ct}`, { token });
  const listing = (c: ReturnType<typeof client>, token: string, ct = 'Audit.Exchange') =>
    c.call('GET', `${c.root}/subscriptions/content?contentType=${ct}&startTime=${new Date(FROZEN - 23 * HOUR).toISOString()}&endTime=${new Date(FROZEN).toISOString()}`, { token });

  before(async () => {
    sim = await startSimulator({
      seed: 41,
      tenants: 3,
      records: 300,
      now: () => FROZEN,
    });
    agent = new https.Agent({ ca: sim.caPem, keepAlive: true });
  });
  after(async () => {
    agent.destroy();
    await sim.close();
  });

  it('gives every tenant its own ids, secret and records; tenant 1 is the one-tenant simulator of the seed', async () => {
    assert.equal(sim.tenants.length, 3);
    assert.deepEqual(sim.tenants.map((t) => t.index), [1, 2, 3]);
    assert.equal(new Set(sim.tenants.map((t) => t.tenantId)).size, 3);
    assert.equal(new Set(sim.tenants.map((t) => t.clientId)).size, 3);
    assert.equal(new Set(sim.tenants.map((t) => t.clientSecret)).size, 3);
    assert.deepEqual([sim.tenantId, sim.clientId, sim.clientSecret], [sim.tenants[0]!.tenantId, sim.tenants[0]!.clientId, sim.tenants[0]!.clientSecret]);
    const ids = sim.tenants.map((t) => t.blobs().flatMap((b) => b.records.map((r) => r.Id as string)));
    for (const own of ids) assert.equal(own.length, 300, 'records is per tenant');
    assert.equal(new Set(ids.flat()).size, 900, 'no record Id shared between tenants');
    assert.equal(sim.blobs().length, sim.tenants.reduce((n, t) => n + t.blobs().length, 0), 'blobs() holds every tenant\'s');
    for (const t of sim.tenants) {
      for (const b of t.blobs()) assert.ok(b.contentUri.includes(`/api/v1.0/${t.tenantId}/activity/feed/audit/`), 'a blob is served under its tenant');
    }

    const single = await startSimulator({ seed: 41, records: 300, now: () => FROZEN });
    try {
      assert.equal(single.tenants.length, 1);
      assert.deepEqual([single.tenantId, single.clientId], [sim.tenantId, sim.clientId]);
      assert.deepEqual(single.blobs().map((b) => [b.contentId, b.recordCount]), sim.tenants[0]!.blobs().map((b) => [b.contentId, b.recordCount]));
      assert.deepEqual(single.blobs().flatMap((b) => b.records), sim.tenants[0]!.blobs().flatMap((b) => b.records));
      // Tenant 2 is what a one-tenant simulator of its own seed serves.
      const second = await startSimulator({ seed: sim.tenants[1]!.seed, records: 300, now: () => FROZEN });
      try {
        assert.equal(second.tenantId, sim.tenants[1]!.tenantId);
        assert.deepEqual(second.blobs().flatMap((b) => b.records), sim.tenants[1]!.blobs().flatMap((b) => b.records));
      } finally {
        await second.close();
      }
    } finally {
      await single.close();
    }
  });

  it('issues a token for each tenant with its own secret, through real msal-node too, and refuses another tenant\'s secret', async () => {
    for (let i = 1; i <= 3; i++) {
      const claims = JSON.parse(Buffer.from((await as(i).token()).split('.')[1]!, 'base64url').toString());
      assert.equal(claims.tid, sim.tenants[i - 1]!.tenantId);
      assert.equal(claims.appid, sim.tenants[i - 1]!.clientId);
    }
    const t3 = sim.tenants[2]!;
    const app = new ConfidentialClientApplication({
      auth: { clientId: t3.clientId, clientSecret: t3.clientSecret, authority: `${sim.loginUrl}/${t3.tenantId}`, knownAuthorities: [new URL(sim.loginUrl).host] },
      system: { networkClient: new CaTrustingNetworkClient(agent) },
    });
    const result = await app.acquireTokenByClientCredential({ scopes: [`${MANAGE}/.default`] });
    assert.equal(JSON.parse(Buffer.from(result!.accessToken.split('.')[1]!, 'base64url').toString()).tid, t3.tenantId);

    const c2 = as(2);
    const wrong = await c2.postToken({ grant_type: 'client_credentials', client_id: sim.tenants[1]!.clientId, client_secret: sim.tenants[0]!.clientSecret, scope: `${MANAGE}/.default` });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json.error_codes, [7000215]);
    const foreignApp = await c2.postToken({ grant_type: 'client_credentials', client_id: sim.tenants[0]!.clientId, client_secret: sim.tenants[0]!.clientSecret, scope: `${MANAGE}/.default` });
    assert.deepEqual(foreignApp.json.error_codes, [700016], 'tenant 1\'s app is not registered in tenant 2');
    const unknown = await c2.postToken({ grant_type: 'client_credentials', client_id: 'x', client_secret: 'y', scope: `${MANAGE}/.default` }, `${sim.loginUrl}/${randomUUID()}/oauth2/v2.0/token`);
    assert.deepEqual(unknown.json.error_codes, [90002]);
    const meta = await c2.call('GET', `${sim.loginUrl}/${sim.tenants[1]!.tenantId}/v2.0/.well-known/openid-configuration`);
    assert.equal(meta.json.token_endpoint, `${sim.loginUrl}/${sim.tenants[1]!.tenantId}/oauth2/v2.0/token`);
  });

  it('keeps each tenant\'s subscriptions and content apart; a token works only on its own tenant\'s path', async () => {
    const [c1, c2] = [as(1), as(2)];
    const [tok1, tok2] = [await c1.token(), await c2.token()];
    assert.equal((await start(c1, tok1)).status, 200);
    const notStarted = await listing(c2, tok2);
    assert.equal(notStarted.json.error.code, 'AF20022', 'tenant 1 started its own subscription, not tenant 2\'s');
    const foreign = await c2.call('GET', `${c2.root}/subscriptions/list`, { token: tok1 });
    assert.equal(foreign.status, 401);
    assert.equal(foreign.json.error.code, 'AF20010');
    const page = await listing(c1, tok1);
    assert.equal(page.status, 200, page.text);
    const own = new Set(sim.tenants[0]!.blobs().filter((b) => b.contentType === 'Audit.Exchange').map((b) => b.contentId));
    assert.ok(page.json.length > 0);
    for (const item of page.json) assert.ok(own.has(item.contentId), 'only tenant 1\'s blobs');
    // Tenant 1's blob asked for under tenant 2's path (with tenant 2's token): not there.
    const blob = sim.tenants[0]!.blobs()[0]!;
    assert.equal((await c2.call('GET', `${c2.root}/audit/${blob.contentId}`, { token: tok2 })).json.error.code, 'AF20050');
  });

  it('serves a fault with a tenant index to that tenant only, and counts it there', async () => {
    const [c1, c2] = [as(1), as(2)];
    const [tok1, tok2] = [await c1.token(), await c2.token()];
    assert.equal((await start(c2, tok2)).status, 200);
    sim.injectFault({ kind: '500', route: 'content', count: 1, tenant: 2 });
    const before1 = sim.tenants[0]!.stats();
    assert.equal((await listing(c1, tok1)).status, 200, 'tenant 1 is not hit by tenant 2\'s fault');
    const hit = await listing(c2, tok2);
    assert.equal(hit.status, 500);
    assert.equal(hit.json.error.code, 'AF50000');
    assert.equal((await listing(c2, tok2)).status, 200, 'count 1');
    assert.equal(sim.tenants[1]!.stats().faultsServed, 1);
    assert.equal(sim.tenants[0]!.stats().faultsServed, 0);
    assert.equal(sim.tenants[2]!.stats().faultsServed, 0);
    assert.equal(sim.stats().faultsServed, 1);
    assert.equal(sim.tenants[0]!.stats().byRoute['content'], (before1.byRoute['content'] ?? 0) + 1, 'each tenant counts its own requests');
    assert.equal(sim.stats().byRoute['content'], sim.tenants.reduce((n, t) => n + (t.stats().byRoute['content'] ?? 0), 0));
    assert.throws(() => sim.injectFault({ kind: '500', route: 'any', count: 1, tenant: 4 }), /tenant must be a tenant index from 1 to 3/);
  });

  it('gives each tenant its own requestsPerMinute quota', async () => {
    const quoted = await startSimulator({ seed: 42, tenants: 2, records: 10, requestsPerMinute: 2, now: () => FROZEN });
    const a = new https.Agent({ ca: quoted.caPem, keepAlive: true });
    try {
      const calls = async (t: (typeof quoted.tenants)[number]) => {
        const c = client({ ...quoted, tenantId: t.tenantId, clientId: t.clientId, clientSecret: t.clientSecret }, a);
        const token = await c.token();
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) statuses.push((await c.call('GET', `${c.root}/subscriptions/list?PublisherIdentifier=${t.tenantId}`, { token })).status);
        return statuses;
      };
      assert.deepEqual(await calls(quoted.tenants[0]!), [200, 200, 403]);
      assert.deepEqual(await calls(quoted.tenants[1]!), [200, 200, 403], 'tenant 2 has its own 2, whatever tenant 1 used');
      assert.deepEqual(quoted.tenants.map((t) => t.stats().throttled), [1, 1]);
      assert.equal(quoted.stats().throttled, 2);
    } finally {
      a.destroy();
      await quoted.close();
    }
  });

  it('registers a certificate on every tenant\'s app, or on one', async () => {
    const [shared, own] = await Promise.all([generateClientCertificate({ commonName: 'shared' }), generateClientCertificate({ commonName: 'own' })]);
    sim.registerCertificate(shared.certPem);
    sim.tenants[2]!.registerCertificate(own.certPem);
    const nowS = Math.floor(FROZEN / 1000);
    const tokenWith = (i: number, cert: typeof shared) => {
      const c = as(i);
      const t = sim.tenants[i - 1]!;
      return c.postToken(assertionForm(t.clientId, assertion({ keyPem: cert.keyPem, certPem: cert.certPem, clientId: t.clientId, aud: c.tokenUrl, nowS })));
    };
    for (const i of [1, 2, 3]) assert.equal((await tokenWith(i, shared)).status, 200, `tenant ${i} knows the shared certificate`);
    assert.equal((await tokenWith(3, own)).status, 200);
    assert.deepEqual((await tokenWith(1, own)).json.error_codes, [700027], 'tenant 1 does not know tenant 3\'s certificate');
  });

  it('refuses a bad tenant count, and a fault for a tenant it does not serve', async () => {
    await assert.rejects(startSimulator({ records: 1, tenants: 0 }), /^Error: startSimulator: tenants must be a whole number from 1 to 1000, got 0$/);
    await assert.rejects(startSimulator({ records: 1, tenants: 2, faults: [{ kind: '500', route: 'any', count: 1, tenant: 3 }] }), /startSimulator: faults: 500@any: tenant must be a tenant index from 1 to 2/);
  });
});
