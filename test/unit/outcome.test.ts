import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CollectorError } from '../../src/errors.ts';
import { ApiCallError } from '../../src/management-api/api-client.ts';
import { NOT_FOUND_ATTEMPTS } from '../../src/polling/backoff.ts';
import { decideFailure } from '../../src/polling/outcome.ts';

const NOW = Date.UTC(2026, 10, 25, 12);
const ctx = { attempts: 0, notFound: 0, apiNow: NOW, expiresAt: NOW + 86_400_000, random: () => 0.5 };
const api = (action: ConstructorParameters<typeof ApiCallError>[0], af?: string, status = 400) =>
  new ApiCallError(action, 'API_ERROR', `fetch blob x: HTTP ${status}`, { apiCode: af, status, fatal: action === 'fatal' });

test('a plain 404 (or AF20050) is retried a few times, then lost', () => {
  let d = decideFailure(api('not-found', undefined, 404), ctx);
  assert.equal(d.kind, 'park');
  assert.ok(d.kind === 'park' && d.notFound && d.retryAt > NOW);
  d = decideFailure(api('not-found', 'AF20050', 404), { ...ctx, attempts: 1, notFound: NOT_FOUND_ATTEMPTS - 2 });
  assert.equal(d.kind, 'park');
  d = decideFailure(api('not-found', undefined, 404), { ...ctx, attempts: 2, notFound: NOT_FOUND_ATTEMPTS - 1 });
  assert.equal(d.kind, 'lost');
});

test('expired (AF20051) and refused ids (AF20052) are lost at once', () => {
  assert.equal(decideFailure(api('expired', 'AF20051'), ctx).kind, 'lost');
  assert.equal(decideFailure(api('gone', 'AF20052'), ctx).kind, 'lost');
});

test('a blob past its expiry is lost whatever the error', () => {
  const d = decideFailure(new CollectorError('API_UNAVAILABLE', 'reset'), { ...ctx, expiresAt: NOW - 1 });
  assert.equal(d.kind, 'lost');
  assert.match(d.kind === 'lost' ? d.reason : '', /expired/);
});

test('problems bigger than the blob stop the poll; state errors stop the run', () => {
  assert.equal(decideFailure(api('fatal', 'AF10001', 401), ctx).kind, 'stop-poll');
  assert.equal(decideFailure(api('subscribe', 'AF20023'), ctx).kind, 'stop-poll');
  assert.equal(decideFailure(new CollectorError('AUTH_FAILED', 'invalid_client', { fatal: true }), ctx).kind, 'stop-poll');
  assert.equal(decideFailure(new CollectorError('API_UNAVAILABLE', 'not trusted', { fatal: true }), ctx).kind, 'stop-poll');
  assert.equal(decideFailure(new CollectorError('STATE_IO', 'ENOSPC', { fatal: true }), ctx).kind, 'stop-run');
});

test('a bad body, throttling or 5xx past the call retries park the blob with growing delays', () => {
  const d0 = decideFailure(new CollectorError('API_BAD_RESPONSE', 'not a JSON array'), ctx);
  const d3 = decideFailure(new CollectorError('API_THROTTLED', '429'), { ...ctx, attempts: 3 });
  assert.equal(d0.kind, 'park');
  assert.equal(d3.kind, 'park');
  assert.ok(d0.kind === 'park' && d3.kind === 'park' && d3.retryAt - NOW > d0.retryAt - NOW);
  // Retrying cannot fix a blob whose NextPageUri points at another host: lost, named.
  assert.equal(decideFailure(new CollectorError('API_BAD_RESPONSE', 'foreign host', { fatal: true }), ctx).kind, 'lost');
});
