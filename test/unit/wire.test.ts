import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatListTime, parseApiTime } from '../../src/management-api/dates.ts';
import { classifyApiError } from '../../src/management-api/af-codes.ts';
import { parseContentList } from '../../src/management-api/list-content.ts';
import { backoffDelay } from '../../src/polling/backoff.ts';
import { recordInstant } from '../../src/record/encode.ts';
import { createRouter } from '../../src/sink/route.ts';

test('CreationTime without a zone is UTC, never local time', () => {
  assert.equal(parseApiTime('2015-06-29T20:03:19'), Date.UTC(2015, 5, 29, 20, 3, 19));
  assert.equal(parseApiTime('2015-06-29T20:03:19Z'), Date.UTC(2015, 5, 29, 20, 3, 19));
  assert.equal(parseApiTime('2017-10-13T18:00:51.748Z'), Date.UTC(2017, 9, 13, 18, 0, 51, 748));
  assert.equal(parseApiTime('2015-06-29T20:03:19.1234567'), Date.UTC(2015, 5, 29, 20, 3, 19, 123));
  assert.equal(parseApiTime('2015-06-29T22:03:19+02:00'), Date.UTC(2015, 5, 29, 20, 3, 19));
  assert.equal(parseApiTime('2015-06-29'), Date.UTC(2015, 5, 29));
  assert.equal(parseApiTime('2024-02-29T23:59:59'), Date.UTC(2024, 1, 29, 23, 59, 59));
  assert.equal(parseApiTime('2000-02-29T00:00:00'), Date.UTC(2000, 1, 29));
  assert.equal(parseApiTime('2026-12-31T00:00:00'), Date.UTC(2026, 11, 31));
  assert.equal(parseApiTime('1601-01-01T00:00:00'), Date.UTC(1601, 0, 1));
  const calendarOverflow = ['2023-02-29T00:00:00', '1900-02-29T00:00:00', '2026-04-31T00:00:00', '2026-00-10T00:00:00', '2026-01-00T00:00:00', '2026-01-01T24:00:00', '2026-01-01T00:60:00', '2026-01-01T00:00:60', '0099-01-01T00:00:00'];
  for (const bad of ['', 'yesterday', '2015-13-01T00:00:00', '2015-02-30T00:00:00', 42, null, ...calendarOverflow]) {
    assert.equal(parseApiTime(bad), undefined, String(bad));
  }
  assert.equal(formatListTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), '2026-01-02T03:04:05');
});

test('routing: tag from Workload, SharePoint and OneDrive apart, fallback by content type', () => {
  const r = createRouter('cloud.office365.management.{table}', { 'Dynamics 365': 'crm' });
  assert.equal(r.tagFor({ Workload: 'Exchange' }, 'Audit.Exchange'), 'cloud.office365.management.exchange');
  assert.equal(r.tagFor({ Workload: 'AzureActiveDirectory' }, 'Audit.AzureActiveDirectory'), 'cloud.office365.management.azureactivedirectory');
  assert.equal(r.tagFor({ Workload: 'SharePoint' }, 'Audit.SharePoint'), 'cloud.office365.management.sharepoint');
  assert.equal(r.tagFor({ Workload: 'OneDrive' }, 'Audit.SharePoint'), 'cloud.office365.management.onedrive');
  assert.equal(r.tagFor({ Workload: 'MicrosoftTeams' }, 'Audit.General'), 'cloud.office365.management.microsoftteams');
  assert.equal(r.tagFor({ Workload: 'Dynamics 365' }, 'Audit.General'), 'cloud.office365.management.crm');
  assert.equal(r.tagFor({ Workload: 'Exchange Online' }, 'Audit.Exchange'), 'cloud.office365.management.exchangeonline');
  assert.equal(r.tagFor({}, 'DLP.All'), 'cloud.office365.management.dlp');
  assert.equal(r.tagFor({ Workload: '' }, 'Audit.General'), 'cloud.office365.management.general');
  assert.equal(r.tagFor({ Workload: 42 }, 'Audit.General'), 'cloud.office365.management.general');
  assert.equal(r.tagFor({ Workload: '---' }, 'Audit.SharePoint'), 'cloud.office365.management.sharepoint');
});

test('record time: CreationTime to the nanosecond, else the blob time (never now), also when it cannot be an EventTime', () => {
  const blob = { sec: 5, nsec: 6 };
  assert.deepEqual(recordInstant('2020-02-07T20:49:49', blob), { t: { sec: Date.UTC(2020, 1, 7, 20, 49, 49) / 1000, nsec: 0 }, fromRecord: true });
  assert.deepEqual(recordInstant('2020-02-07T20:49:49.123456789', blob), { t: { sec: Date.UTC(2020, 1, 7, 20, 49, 49) / 1000, nsec: 123_456_789 }, fromRecord: true });
  assert.deepEqual(recordInstant('garbage', blob), { t: blob, fromRecord: false });
  assert.deepEqual(recordInstant(undefined, blob), { t: blob, fromRecord: false });
  // The Windows zero date parses, but an EventTime holds uint32 seconds from 1970 to 2106.
  assert.deepEqual(recordInstant('1601-01-01T00:00:00', blob), { t: blob, fromRecord: false });
  assert.deepEqual(recordInstant('2200-01-01T00:00:00', blob), { t: blob, fromRecord: false });
});

test('API errors are classified by the AF table, then by status', () => {
  assert.equal(classifyApiError(400, 'AF20022'), 'subscribe');
  assert.equal(classifyApiError(400, 'AF20023'), 'subscribe');
  assert.equal(classifyApiError(403, 'AF429'), 'throttled');
  assert.equal(classifyApiError(429, undefined), 'throttled');
  assert.equal(classifyApiError(400, 'AF20051'), 'expired');
  assert.equal(classifyApiError(400, 'AF20052'), 'gone');
  assert.equal(classifyApiError(404, 'AF20050'), 'not-found');
  assert.equal(classifyApiError(404, undefined), 'not-found');
  assert.equal(classifyApiError(400, 'AF20055'), 'window');
  assert.equal(classifyApiError(401, 'AF10001'), 'fatal');
  assert.equal(classifyApiError(401, undefined), 'reauth');
  assert.equal(classifyApiError(500, 'AF50000'), 'retry');
  assert.equal(classifyApiError(503, undefined), 'retry');
  assert.equal(classifyApiError(400, 'AF99999'), 'fatal');
});

test('backoff grows, is capped, has jitter, honours Retry-After', () => {
  const mid = () => 1; // no jitter reduction
  const p = { baseMs: 1000, maxMs: 60_000 };
  assert.equal(backoffDelay(0, p, { random: mid }), 1000);
  assert.equal(backoffDelay(3, p, { random: mid }), 8000);
  assert.equal(backoffDelay(30, p, { random: mid }), 60_000);
  assert.equal(backoffDelay(3, p, { random: () => 0 }), 4000);
  assert.equal(backoffDelay(0, p, { retryAfterSeconds: 7 }), 7000);
  assert.equal(backoffDelay(0, p, { retryAfterSeconds: 86_400 }), 240_000, 'a bogus Retry-After is capped');
});

test('content listing items are validated, naming the item and field; unusable items are set aside', () => {
  const ok = parseContentList([{ contentType: 'Audit.Exchange', contentId: 'a$b', contentUri: 'https://m/x', contentCreated: '2026-01-01T00:00:00.000Z', contentExpiration: '2026-01-08T00:00:00.000Z' }], 'list');
  assert.equal(ok.blobs[0]!.contentId, 'a$b');
  assert.deepEqual(ok.invalid, []);
  assert.throws(() => parseContentList({ error: 1 }, 'list X'), /list X: expected a JSON array/);
  // Unusable items are set aside with a description (the poller counts them as lost); the rest stays usable.
  const mixed = parseContentList(
    [
      { contentId: 'a', contentUri: 'https://m/x', contentCreated: 'nope' },
      { contentId: 'b', contentUri: 'ftp://m/x', contentCreated: '2026-01-01' },
      { contentId: 'c', contentUri: 'https://m/c', contentCreated: '2026-01-01T00:00:00.000Z' },
    ],
    'list',
  );
  assert.deepEqual(mixed.blobs.map((b) => b.contentId), ['c']);
  assert.match(mixed.invalid[0]!.problem, /item 0 \(contentId a\) has no valid contentCreated/);
  assert.match(mixed.invalid[1]!.problem, /item 1 \(contentId b\) has a contentUri that is not an https URL/);
  assert.notEqual(mixed.invalid[0]!.key, mixed.invalid[1]!.key);
});
