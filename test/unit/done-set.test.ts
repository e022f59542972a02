/**
 * The done-set's typed-array hash table against a plain Map of the same operations: membership,
 * extension of an expiry, prune by expiry, growth, and the snapshot form byte for byte; malformed
 * fingerprints and expiries refused (a hostile state file is a corrupt-state error, not a crash).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DoneSet, fingerprint, isExpiryMinute, isFingerprint } from '../../src/polling/done-set.ts';

test('matches a Map through adds, extensions, prunes and the snapshot form', () => {
  const ref = new Map<string, number>();
  const set = new DoneSet();
  for (let i = 0; i < 40_000; i++) {
    const fp = fingerprint(`20261201${i}$20261201${i}$audit_exchange$Audit_Exchange$emea0036`);
    const exp = 29_000_000 + (i % 700);
    set.add(fp, exp);
    ref.set(fp, exp);
    if (i % 7 === 0) {
      set.add(fp, exp + 5); // extends
      set.add(fp, exp - 5); // never shortens
      ref.set(fp, exp + 5);
    }
  }
  assert.equal(set.size, ref.size);
  for (const fp of ref.keys()) assert.ok(set.has(fp));
  for (let i = 0; i < 5_000; i++) assert.equal(set.has(fingerprint(`absent-${i}`)), false);
  const entries = (enc: Record<string, string>) => {
    const m = new Map<string, number>();
    for (const [k, v] of Object.entries(enc)) for (let i = 0; i < v.length; i += 16) m.set(v.slice(i, i + 16), Number(k));
    return new Map([...m].sort());
  };
  const enc = set.encode();
  assert.deepEqual(entries(enc), new Map([...ref].sort()), 'the snapshot holds every entry with its expiry');
  const decoded = DoneSet.decode(enc)!;
  assert.equal(decoded.size, ref.size);
  assert.deepEqual(entries(decoded.encode()), entries(enc), 'decoded, the same entries (slot order may differ)');

  const cut = 29_000_350;
  const expected = [...ref.values()].filter((e) => e < cut).length;
  assert.equal(set.prune(cut * 60_000), expected);
  assert.equal(set.prune(cut * 60_000), 0, 'nothing left to drop');
  for (const [fp, e] of ref) assert.equal(set.has(fp), e >= cut, fp);
  assert.equal(set.size, ref.size - expected);
  set.add(fingerprint('after-prune'), cut + 1);
  assert.ok(set.has(fingerprint('after-prune')));
});

test('malformed fingerprints and expiries are refused; decode says undefined', () => {
  assert.ok(isFingerprint(fingerprint('x')));
  for (const bad of ['', 'short', 'abcdefghijklmnop=', 'abcdefghijklmno+', 42, null]) assert.equal(isFingerprint(bad), false, String(bad));
  for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN, '5']) assert.equal(isExpiryMinute(bad), false, String(bad));
  const set = new DoneSet();
  assert.throws(() => set.add('not a fingerprint', 5), TypeError);
  assert.throws(() => set.add(fingerprint('x'), 0), TypeError);
  assert.equal(set.has('not a fingerprint'), false);
  assert.equal(DoneSet.decode({ '5': 'abc' }), undefined);
  assert.equal(DoneSet.decode({ 'x': fingerprint('a') }), undefined);
  assert.equal(DoneSet.decode({ '5': 'abcdefghijklmno+' }), undefined);
  assert.equal(DoneSet.decode([]), undefined);
  assert.equal(DoneSet.decode({})!.size, 0);
});
