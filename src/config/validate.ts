/**
 * Pure helpers for walking an untrusted YAML tree while collecting every problem with its key
 * path (`tenants[0].client_id: ...`), instead of stopping at the first; for describing a user's
 * value without ever printing something that could be a secret; and for checking the text of the
 * files a config names (PEM certificates and keys, secret files). No I/O here: load.ts reads.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

export interface Problem {
  path: string;
  message: string;
}

/** Every problem found in one config, in the order found. */
export class Problems {
  readonly list: Problem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

export type Obj = Record<string, unknown>;

/** A YAML mapping (not null, not a list). */
export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !ArrayBuffer.isView(v);
}

// ---------------------------------------------------------------------------------------------
// Describing values without leaking secrets (DESIGN.md guarantee 7).
//
// An Entra client secret is 40 characters of [A-Za-z0-9~._-] (most carry a `~`: `abc8Q~...`), and
// the portal shows it once, so people paste it into whatever field they are editing. A config
// error goes to a terminal, a journal or a ticket: it may echo a user's string only when that
// string cannot be such a secret. Everything else is described by its shape.
// ---------------------------------------------------------------------------------------------

/**
 * True for a string of at least 16 characters without spaces that mixes upper case, lower case and
 * digits: what generated credentials look like (an Entra secret without a `~` still mixes all
 * three), and what names people type (`M365_CLIENT_SECRET`, `Dynamics 365`) rarely do.
 */
export function looksRandom(s: string): boolean {
  return s.length >= 16 && !/\s/.test(s) && /[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s);
}

/** A short, identifier-like string (`soon`, `kafka`, `8d`, `Audit.Nope`) that is safe to echo. */
export function isShowable(s: string): boolean {
  return s.length > 0 && s.length <= 24 && /^[A-Za-z0-9][A-Za-z0-9 ._:/-]*$/.test(s) && !looksRandom(s);
}

/**
 * Names the type of a value for "expected X, got Y" messages. Numbers, booleans and short
 * identifier-like strings are shown; any other string only by its length.
 */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return 'a date';
  if (ArrayBuffer.isView(v)) return 'binary data';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    if (v === '') return 'an empty string';
    if (v.trim() === '') return 'a blank string';
    return isShowable(v) ? `string ${JSON.stringify(v)}` : `a string of ${v.length} characters (not shown)`;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v === 'bigint' ? 'a very large integer' : typeof v;
}

/** An environment variable name as people write them; shown when it cannot be a pasted secret. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** The variable name when it is one, else a description that does not contain the value. */
export function describeEnvName(name: string): string {
  if (!ENV_NAME.test(name)) return `a value of ${name.length} characters that is not an environment variable name`;
  return looksRandom(name) ? `a value of ${name.length} characters that looks like a secret, not a variable name` : name;
}

/**
 * The resolved path when the user's text looks like a path, else a description. A path looks like
 * one when it has a `/`, or is a bare file name with a usual extension (`app.key`, `emea.secret`),
 * and has no `~` (which Entra secrets carry) nor control characters. `raw` decides, `resolved` is
 * what is shown: a bare word resolved against the config's folder still contains the word.
 */
export function describePath(raw: string, resolved: string): string {
  const pathLike = raw.includes('/') || (/^[\w.-]+\.(pem|crt|cer|cert|key|secret|txt)$/i.test(raw) && !looksRandom(raw));
  if (pathLike && !raw.includes('~') && raw.length <= 4096 && !/\p{C}/u.test(raw)) return resolved;
  return `the path given (${raw.length} characters, not shown: write it with a "/", e.g. ./name, to see it here)`;
}

/** A short lower-case word (a cloud name, an enum value) or a description. */
export function describeWord(s: string, what: string): string {
  return s.length <= 20 && /^[a-z0-9-]+$/.test(s) ? `"${s}"` : `a value of ${s.length} characters that is not ${what}`;
}

/**
 * The origin of a parsed URL when its host is a plain DNS name or an IP address, else undefined.
 * `URL.origin` carries no user info, path or query, where tokens and secrets end up. The URL
 * parser lower-cases the host, so a secret pasted after `https://` is caught by its shape: a
 * label of 16 or more characters mixing letters and digits.
 */
export function safeOrigin(u: URL): string | undefined {
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return u.origin;
  const dnsName = /^[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?$/.test(host);
  const randomLabel = host.split('.').some((l) => l.length >= 16 && /[a-z]/.test(l) && /[0-9]/.test(l));
  return dnsName && !randomLabel ? u.origin : undefined;
}

/**
 * Keeps the words of a library's message (the `yaml` parser's, which quotes tags, escapes and
 * directives from the source) and replaces every other token with "…".
 */
export function redactFreeText(msg: string): string {
  return msg
    .split(/(\s+)/)
    .map((w) => (/^\s*$/.test(w) || /^[(]?[A-Za-z]{1,24}(-[A-Za-z]{1,24})*[),.:;]{0,2}$/.test(w) || /^\d{1,9}[,.:]?$/.test(w) ? w : '…'))
    .join('');
}

// ---------------------------------------------------------------------------------------------
// Key paths
// ---------------------------------------------------------------------------------------------

/** Reports keys of `obj` that are not in `known` (typos must not silently fall back to defaults). */
export function checkKeys(p: Problems, path: string, obj: Obj, known: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      p.add(join(path, k), `unknown key (expected one of: ${known.join(', ')})`);
    }
  }
}

/**
 * Extends a key path. A key that is not identifier-like (a secret typed where a key goes) is
 * replaced by its length, since key paths are printed.
 */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const shown = key.length <= 40 && /^[A-Za-z0-9_ .-]+$/.test(key) && !looksRandom(key) ? key : `<a key of ${key.length} characters>`;
  return path ? `${path}.${shown}` : shown;
}

/** Reads an optional sub-mapping; reports and returns {} when it is not a mapping. */
export function section(p: Problems, path: string, parent: Obj, key: string): Obj {
  const v = parent[key];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) {
    p.add(join(path, key), `must be a mapping, got ${typeName(v)}`);
    return {};
  }
  return v;
}

export function optString(p: Problems, path: string, obj: Obj, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') {
    p.add(join(path, key), `must be a non-empty string, got ${typeName(v)}`);
    return undefined;
  }
  return v.trim();
}

export function optInt(
  p: Problems,
  path: string,
  obj: Obj,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(join(path, key), `must be an integer from ${min} to ${max}, got ${typeName(v)}`);
    return undefined;
  }
  return v;
}

export function optBool(p: Problems, path: string, obj: Obj, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    p.add(join(path, key), `must be true or false, got ${typeName(v)}`);
    return undefined;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Files named by the config: what the reader's error codes mean, and the checks of their text.
// Messages here never include file content: a key file's bytes are a secret.
// ---------------------------------------------------------------------------------------------

/**
 * What a failed read means, for "<key>: <path> <problem>". Codes are Node's fs codes plus ENOTREG
 * (exists, not a regular file) and EFBIG (larger than allowed), which load.ts's reader raises.
 */
export function fileProblem(code: string | undefined, maxBytes: number): string {
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'ENOTDIR':
      return 'does not exist (a part of the path is not a folder)';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read by this user (permission denied)';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'ENOTREG':
      return 'is not a regular file (a device, socket or pipe)';
    case 'EFBIG':
      return `is larger than ${maxBytes} bytes; this cannot be the right file`;
    case 'ELOOP':
      return 'is a loop of symbolic links';
    default:
      return `cannot be read (${code ?? 'unknown error'})`;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 text (a BOM is dropped); undefined for invalid UTF-8 or NUL bytes (binary data). */
export function decodeText(bytes: Uint8Array | string): string | undefined {
  if (typeof bytes === 'string') return bytes.includes('\0') ? undefined : bytes;
  try {
    const text = utf8.decode(bytes);
    return text.includes('\0') ? undefined : text;
  } catch {
    return undefined;
  }
}

/** The PEM blocks `-----BEGIN <label>-----` … `-----END <label>-----` of a text, in order. */
export function pemBlocks(text: string, label: string): string[] {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const blocks: string[] = [];
  let from = 0;
  for (;;) {
    const b = text.indexOf(begin, from);
    if (b < 0) return blocks;
    const e = text.indexOf(end, b + begin.length);
    if (e < 0) return blocks;
    blocks.push(text.slice(b, e + end.length) + '\n');
    from = e + end.length;
  }
}

/** A check of a file's text: the parsed value, or the problem (to follow the file's path). */
export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

const DER_HINT = 'is binary, not PEM text (DER? convert it: openssl x509 -inform der -in FILE -out FILE.pem)';

/**
 * Every `CERTIFICATE` block of a PEM text parsed (a CA bundle or a certificate and its chain);
 * at least one is required. The first is the certificate a key must belong to.
 */
export function checkCertificates(text: string | undefined): Checked<X509Certificate[]> {
  if (text === undefined) return { ok: false, problem: DER_HINT };
  const blocks = pemBlocks(text, 'CERTIFICATE');
  if (blocks.length === 0) return { ok: false, problem: 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)' };
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch {
      const which = blocks.length === 1 ? 'its certificate' : `certificate ${i + 1} of ${blocks.length}`;
      return { ok: false, problem: `holds a damaged PEM certificate (${which} is not valid X.509)` };
    }
  }
  return { ok: true, value: certs };
}

/** The start of a PEM block, capturing its label. */
const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;
/** Labels of a private key block: PKCS#8, the traditional RSA/EC/DSA forms, and OpenSSH's own. */
const KEY_LABEL = /^(?:(?:RSA|EC|DSA|OPENSSH) )?PRIVATE KEY$/;

/**
 * An unencrypted PEM private key, as `crypto.createPrivateKey` reads it: the first PEM block of
 * the file (experiment: a file with the certificate first and the key second is refused by
 * createPrivateKey with ERR_OSSL_UNSUPPORTED, while the reverse order is read).
 */
export function checkPrivateKey(text: string | undefined): Checked<KeyObject> {
  if (text === undefined) return { ok: false, problem: 'is binary, not a PEM private key' };
  // Judged by the labels of the file's PEM blocks (`-----BEGIN <label>-----`), in file order.
  const blocks = [...text.matchAll(PEM_BEGIN)].map((m) => ({ label: m[1]!, at: m.index }));
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY') || /Proc-Type: *4, *ENCRYPTED/.test(text)) {
    return { ok: false, problem: 'is encrypted; give an unencrypted PEM key (protect the file with permissions instead)' };
  }
  const key = blocks.find((b) => KEY_LABEL.test(b.label));
  if (!key) return { ok: false, problem: 'holds no PEM private key (a BEGIN PRIVATE KEY block)' };
  if (blocks.some((b) => b.label === 'OPENSSH PRIVATE KEY')) {
    return { ok: false, problem: 'is an OpenSSH key; convert it to PEM (ssh-keygen -p -m PEM -f FILE)' };
  }
  try {
    return { ok: true, value: createPrivateKey(text) };
  } catch {
    if (blocks[0]!.at < key.at) {
      return { ok: false, problem: 'has another PEM block before the private key; put the key first or in a file of its own' };
    }
    return { ok: false, problem: 'holds a damaged or unsupported PEM private key' };
  }
}
