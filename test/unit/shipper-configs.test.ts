/**
 * The shipper configurations we ship, checked as files: fluent-bit.conf.example,
 * plugin/fluent-bit/*.conf and *.yaml (Fluent Bit), plugin/vector/*.yaml (Vector).
 *
 * Without the shippers: every @INCLUDE exists, every section and key is one Fluent Bit documents
 * for that plugin (allow-lists below, from the plugins' docs and config maps; compared without
 * case, as Fluent Bit does), the forward input listens where the collector sends by default and
 * fits its largest frame, the Lua filter runs devo.lua's to_devo, the syslog outputs to Devo use
 * TLS and do not truncate, the YAML form and the one-file example hold the same pipeline as the
 * snippets, and in vector.yaml every `inputs` entry names a component that exists.
 * With the shippers: `fluent-bit --dry-run -c FILE` on every Fluent Bit file (the binary from
 * test/helpers/fluent-bit.ts: $FLUENT_BIT, ../shared/tools/fluent-bit/fluent-bit, or PATH; skipped
 * without one, failed under CI=true), on a copy whose certificate and storage paths point at
 * throwaway files; `vector validate --no-environment` when vector is on PATH.
 *
 * node --import tsx --test test/unit/shipper-configs.test.ts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { DEFAULTS } from '../../src/config/schema.ts';
import { generateClientCertificate } from '../../src/simulator/tls.ts';
import { needFluentBit } from '../helpers/fluent-bit.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const fbDir = path.join(repoRoot, 'plugin', 'fluent-bit');
const vectorDir = path.join(repoRoot, 'plugin', 'vector');
const example = path.join(repoRoot, 'fluent-bit.conf.example');
const snippetsMain = path.join(fbDir, 'm365-forward.conf');
const yamlMain = path.join(fbDir, 'fluent-bit.yaml');

/** Every Fluent Bit file we ship; each one is checked as a main file (-c) of its own. */
const fluentBitFiles = [
  example,
  ...readdirSync(fbDir)
    .filter((f) => f.endsWith('.conf') || f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(fbDir, f)),
];
/** The files that are whole pipelines (the rest are snippets). */
const pipelines = [example, snippetsMain, yamlMain, path.join(fbDir, 'try-local.conf')];
const vectorFiles = readdirSync(vectorDir)
  .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
  .sort()
  .map((f) => path.join(vectorDir, f));

// What the collector sends by default (src/config/schema.ts).
const AUDIT_TAG = DEFAULTS.tagTemplate.replace('{table}', 'exchange');
const STATUS_TAG = DEFAULTS.statusTag;
/** The status.tag README.md suggests for Devo; the shipped configs take it as well. */
const STATUS_TAG_DEVO = `my.app.${STATUS_TAG}`;

// ---------------------------------------------------------------------------------------------
// Allow-lists: documented keys, lower case. Generic keys come from Fluent Bit's flb_input.c /
// flb_filter.c / flb_output.c (every plugin of that kind takes them), the others from each
// plugin's page under pipeline/ in the Fluent Bit docs. Add a plugin here before using it.

const TLS_KEYS = [
  'tls', 'tls.verify', 'tls.verify_hostname', 'tls.debug', 'tls.ca_file', 'tls.ca_path', 'tls.crt_file',
  'tls.key_file', 'tls.key_passwd', 'tls.vhost', 'tls.min_version', 'tls.max_version', 'tls.ciphers',
];

const SERVICE_KEYS = [
  'flush', 'grace', 'daemon', 'log_file', 'log_level', 'parsers_file', 'plugins_file', 'streams_file',
  'http_server', 'http_listen', 'http_port', 'health_check', 'hc_errors_count', 'hc_retry_failure_count',
  'hc_period', 'hot_reload', 'coro_stack_size', 'scheduler.base', 'scheduler.cap', 'json.convert_nan_to_null',
  'json.escape_unicode', 'dns.mode', 'dns.resolver', 'dns.prefer_ipv4', 'dns.prefer_ipv6',
  'storage.path', 'storage.sync', 'storage.checksum', 'storage.max_chunks_up', 'storage.backlog.mem_limit',
  'storage.backlog.flush_on_shutdown', 'storage.metrics', 'storage.delete_irrecoverable_chunks',
  'storage.inherit', 'storage.type', 'storage.trim_files',
];

const GENERIC: Record<'INPUT' | 'FILTER' | 'OUTPUT', string[]> = {
  INPUT: [
    'name', 'tag', 'alias', 'log_level', 'log_suppress_interval', 'listen', 'host', 'port', 'ipv6',
    'mem_buf_limit', 'routable', 'threaded', 'storage.type', 'storage.pause_on_chunks_overlimit',
    ...TLS_KEYS, 'tls.verify_client_cert',
  ],
  FILTER: ['name', 'match', 'match_regex', 'alias', 'log_level', 'log_suppress_interval'],
  OUTPUT: [
    'name', 'match', 'match_regex', 'alias', 'log_level', 'log_suppress_interval', 'host', 'port', 'ipv6',
    'retry_limit', 'workers', 'storage.total_limit_size', ...TLS_KEYS,
  ],
};
/** Prefixes every plugin of a kind accepts (networking settings). */
const GENERIC_PREFIXES: Record<string, string[]> = { INPUT: ['net.'], FILTER: [], OUTPUT: ['net.'] };

const PLUGINS: Record<'INPUT' | 'FILTER' | 'OUTPUT', Record<string, string[]>> = {
  INPUT: {
    forward: [
      'tag_prefix', 'unix_path', 'unix_perm', 'buffer_chunk_size', 'buffer_max_size', 'shared_key',
      'self_hostname', 'security.users', 'empty_shared_key', 'workers',
    ],
  },
  FILTER: {
    lua: ['script', 'call', 'code', 'type_int_key', 'type_array_key', 'protected_mode', 'time_as_table', 'enable_flb_null'],
    grep: ['regex', 'exclude', 'logical_op'],
    modify: ['set', 'add', 'remove', 'remove_wildcard', 'remove_regex', 'rename', 'hard_rename', 'copy', 'hard_copy', 'condition'],
    record_modifier: ['record', 'remove_key', 'allowlist_key', 'whitelist_key', 'uuid_key'],
  },
  OUTPUT: {
    syslog: [
      'mode', 'syslog_format', 'syslog_maxsize', 'syslog_severity_key', 'syslog_severity_preset',
      'syslog_facility_key', 'syslog_facility_preset', 'syslog_hostname_key', 'syslog_hostname_preset',
      'syslog_appname_key', 'syslog_appname_preset', 'syslog_procid_key', 'syslog_procid_preset',
      'syslog_msgid_key', 'syslog_msgid_preset', 'syslog_sd_key', 'syslog_message_key', 'allow_longer_sd_id',
    ],
    stdout: ['format', 'json_date_key', 'json_date_format'],
  },
};

const PARSER_KEYS = [
  'name', 'format', 'regex', 'time_key', 'time_format', 'time_keep', 'time_offset', 'time_strict',
  'types', 'decode_field', 'decode_field_as', 'skip_empty_values',
];

const SECTION_KINDS = ['SERVICE', 'INPUT', 'FILTER', 'OUTPUT', 'PARSER'] as const;
type Kind = (typeof SECTION_KINDS)[number];

// ---------------------------------------------------------------------------------------------
// A small reader for Fluent Bit's two configuration formats, into one shape.

interface Entry { key: string; value: string; where: string }
interface Section { kind: string; where: string; entries: Entry[] }
interface Loaded { sections: Section[]; problems: string[] }

const rel = (f: string) => path.relative(repoRoot, f);

/**
 * The classic format, as Fluent Bit's flb_cf_fluentbit.c reads it: `@INCLUDE` and `@SET` at the
 * start of a line, `[SECTION]` headers, `key value` lines indented by the file's first indent,
 * comments only on their own line. `@INCLUDE` targets are resolved against the including file's
 * directory; Fluent Bit itself tries its working directory, then the main file's directory, so a
 * target must also exist there (true when both are the same folder, as in everything we ship).
 */
function loadClassic(file: string, text = readFileSync(file, 'utf8'), root = file, seen = new Set<string>()): Loaded {
  const sections: Section[] = [];
  const problems: string[] = [];
  const at = (n: number) => `${rel(file)}:${n}`;
  if (seen.has(file)) return { sections, problems: [`${rel(file)} is included twice`] };
  seen.add(file);
  let indent: string | undefined;
  let current: Section | undefined;
  text.split('\n').forEach((raw, i) => {
    const n = i + 1;
    const line = raw.replace(/\r$/, '');
    if (/\s$/.test(line)) problems.push(`${at(n)}: trailing whitespace (Fluent Bit keeps it in @INCLUDE paths and values)`);
    if (line.trim() === '' || line.startsWith('#')) return;
    if (line.startsWith('@')) {
      const inc = /^@include\s+(\S.*)$/i.exec(line);
      if (inc) {
        const target = inc[1].trim();
        const resolved = path.resolve(path.dirname(file), target);
        if (!existsSync(resolved)) {
          problems.push(`${at(n)}: @INCLUDE ${target}: ${rel(resolved)} does not exist`);
          return;
        }
        if (!existsSync(path.resolve(path.dirname(root), target))) {
          problems.push(`${at(n)}: @INCLUDE ${target}: Fluent Bit resolves it against the main file's folder (${rel(path.dirname(root))}), where it does not exist`);
        }
        const sub = loadClassic(resolved, readFileSync(resolved, 'utf8'), root, seen);
        sections.push(...sub.sections);
        problems.push(...sub.problems);
        // Lines after an @INCLUDE still belong to this file's current section in Fluent Bit.
        return;
      }
      if (!/^@set\s+\S+=/i.test(line)) problems.push(`${at(n)}: unknown directive ${line}`);
      return;
    }
    if (line.startsWith('[')) {
      const m = /^\[([^\]]+)\]$/.exec(line);
      if (!m) {
        problems.push(`${at(n)}: bad section header ${line}`);
        return;
      }
      current = { kind: m[1].trim(), where: at(n), entries: [] };
      sections.push(current);
      return;
    }
    if (indent === undefined) {
      indent = /^[ \t]*/.exec(line)![0];
      if (indent === '') {
        problems.push(`${at(n)}: a key must be indented under its [SECTION]`);
        indent = undefined;
        return;
      }
    }
    if (!line.startsWith(indent)) {
      problems.push(`${at(n)}: indentation differs from the file's first indented line`);
      return;
    }
    const body = line.slice(indent.length);
    if (body.startsWith('#')) return;
    if (/^\s/.test(body)) {
      problems.push(`${at(n)}: extra indentation`);
      return;
    }
    const kv = /^(\S+)\s+(\S.*)$/.exec(body);
    if (!kv) {
      problems.push(`${at(n)}: key without a value: ${body}`);
      return;
    }
    if (/\s#/.test(kv[2])) problems.push(`${at(n)}: "#" inside a value (the classic format has no inline comments): ${body}`);
    if (!current) {
      problems.push(`${at(n)}: key outside any [SECTION]`);
      return;
    }
    current.entries.push({ key: kv[1], value: kv[2].trim(), where: at(n) });
  });
  return { sections, problems };
}

/** The YAML format: `service`, `pipeline: {inputs, filters, outputs}`, `includes`, `parsers`. */
function loadYaml(file: string, text = readFileSync(file, 'utf8')): Loaded {
  const sections: Section[] = [];
  const problems: string[] = [];
  const doc = parseYaml(text) as Record<string, unknown>;
  const TOP = ['service', 'pipeline', 'includes', 'env', 'parsers', 'multiline_parsers', 'plugins', 'upstream_servers', 'customs'];
  const toEntries = (obj: Record<string, unknown>, where: string): Entry[] =>
    Object.entries(obj).flatMap(([key, v]) => {
      const values = Array.isArray(v) ? v : [v];
      return values.map((x) => {
        if (x !== null && typeof x === 'object') problems.push(`${where}: ${key}: nested values are not checked here`);
        return { key, value: String(x), where };
      });
    });
  for (const [key, value] of Object.entries(doc ?? {})) {
    if (!TOP.includes(key)) problems.push(`${rel(file)}: unknown top-level key ${key}`);
    if (key === 'includes') {
      for (const inc of value as string[]) {
        if (!existsSync(path.resolve(path.dirname(file), inc))) problems.push(`${rel(file)}: includes: ${inc} does not exist`);
      }
    }
  }
  if (doc?.service) sections.push({ kind: 'SERVICE', where: `${rel(file)} service`, entries: toEntries(doc.service as Record<string, unknown>, `${rel(file)} service`) });
  const pipeline = (doc?.pipeline ?? {}) as Record<string, unknown>;
  const kinds: Record<string, Kind> = { inputs: 'INPUT', filters: 'FILTER', outputs: 'OUTPUT' };
  for (const [key, list] of Object.entries(pipeline)) {
    const kind = kinds[key];
    if (!kind) {
      problems.push(`${rel(file)}: pipeline: unknown key ${key}`);
      continue;
    }
    (list as Record<string, unknown>[]).forEach((item, i) => {
      const where = `${rel(file)} pipeline.${key}[${i}]`;
      sections.push({ kind, where, entries: toEntries(item, where) });
    });
  }
  for (const [i, p] of ((doc?.parsers ?? []) as Record<string, unknown>[]).entries()) {
    sections.push({ kind: 'PARSER', where: `${rel(file)} parsers[${i}]`, entries: toEntries(p, `${rel(file)} parsers[${i}]`) });
  }
  return { sections, problems };
}

const loadFluentBit = (file: string): Loaded => (file.endsWith('.yaml') ? loadYaml(file) : loadClassic(file));

// ---------------------------------------------------------------------------------------------
// Checks.

const get = (s: Section, key: string): string | undefined => s.entries.find((e) => e.key.toLowerCase() === key)?.value;
const all = (s: Section, key: string): string[] => s.entries.filter((e) => e.key.toLowerCase() === key).map((e) => e.value);
const kindOf = (s: Section) => s.kind.toUpperCase();
const pluginOf = (s: Section) => (get(s, 'name') ?? '').toLowerCase();
const label = (s: Section) => `${s.where} [${s.kind}] ${get(s, 'name') ?? ''}`.trimEnd();

/** Fluent Bit's boolean spellings (flb_utils_bool). */
function fbBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(s)) return true;
  if (['off', 'false', 'no', '0'].includes(s)) return false;
  return undefined;
}

/** Fluent Bit's unit sizes (flb_utils_size_to_bytes): decimal k/K/KB, m/M/MB, g/G/GB; NaN otherwise. */
function fbSize(v: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]b?)?$/i.exec((v ?? '').trim());
  if (!m) return Number.NaN;
  const unit = (m[2] ?? '').toLowerCase()[0];
  return Number(m[1]) * (unit === 'k' ? 1e3 : unit === 'm' ? 1e6 : unit === 'g' ? 1e9 : 1);
}

/** Every section is a known kind and every key a documented one for its plugin. */
function checkKeys(sections: Section[]): string[] {
  const problems: string[] = [];
  for (const s of sections) {
    const kind = kindOf(s);
    if (!(SECTION_KINDS as readonly string[]).includes(kind)) {
      problems.push(`${s.where}: unknown section [${s.kind}] (expected one of ${SECTION_KINDS.join(', ')})`);
      continue;
    }
    let allowed: string[];
    let prefixes: string[] = [];
    if (kind === 'SERVICE') allowed = SERVICE_KEYS;
    else if (kind === 'PARSER') allowed = PARSER_KEYS;
    else {
      const k = kind as 'INPUT' | 'FILTER' | 'OUTPUT';
      const plugin = pluginOf(s);
      if (!plugin) {
        problems.push(`${label(s)}: no Name`);
        continue;
      }
      const specific = PLUGINS[k][plugin];
      if (!specific) {
        problems.push(`${label(s)}: no allow-list for ${k.toLowerCase()} plugin "${plugin}" (add its documented keys to this test)`);
        continue;
      }
      allowed = [...GENERIC[k], ...specific];
      prefixes = GENERIC_PREFIXES[k];
    }
    for (const e of s.entries) {
      const key = e.key.toLowerCase();
      if (!allowed.includes(key) && !prefixes.some((p) => key.startsWith(p))) {
        problems.push(`${e.where}: unknown key "${e.key}" for ${label(s)}`);
      }
    }
  }
  return problems;
}

/** The forward input: loopback on the collector's defaults, room for its largest frame, disk buffer. */
function checkForwardInputs(sections: Section[]): string[] {
  const problems: string[] = [];
  for (const s of sections.filter((x) => kindOf(x) === 'INPUT' && pluginOf(x) === 'forward')) {
    if (get(s, 'unix_path') === undefined) {
      if (get(s, 'listen') !== DEFAULTS.forwardHost) problems.push(`${label(s)}: Listen must be ${DEFAULTS.forwardHost} (the collector's default host), got ${get(s, 'listen')}`);
      if (get(s, 'port') !== String(DEFAULTS.forwardPort)) problems.push(`${label(s)}: Port must be ${DEFAULTS.forwardPort} (the collector's default port), got ${get(s, 'port')}`);
    }
    const max = fbSize(get(s, 'buffer_max_size'));
    if (!(max > DEFAULTS.maxFrameBytes)) {
      problems.push(`${label(s)}: Buffer_Max_Size ${get(s, 'buffer_max_size')} (${max} bytes) must exceed the collector's max_frame_bytes ${DEFAULTS.maxFrameBytes}`);
    }
    const chunk = fbSize(get(s, 'buffer_chunk_size') ?? '1024000');
    if (!(chunk <= max)) problems.push(`${label(s)}: Buffer_Chunk_Size must not exceed Buffer_Max_Size`);
    if (get(s, 'storage.type') !== 'filesystem') problems.push(`${label(s)}: storage.type must be filesystem (no pause, survives restarts)`);
    if (fbBool(get(s, 'storage.pause_on_chunks_overlimit')) === true) problems.push(`${label(s)}: storage.pause_on_chunks_overlimit on would pause the input`);
    for (const k of ['shared_key', 'security.users', 'empty_shared_key']) {
      if (get(s, k) !== undefined) problems.push(`${label(s)}: ${k} must not be set (the collector's Forward client cannot do Fluent Bit's handshake)`);
    }
  }
  return problems;
}

/** Lua filters: devo.lua exists where Fluent Bit looks (the main file's folder), to_devo, nulls kept. */
function checkLuaFilters(sections: Section[], mainFile: string): string[] {
  const problems: string[] = [];
  for (const s of sections.filter((x) => kindOf(x) === 'FILTER' && pluginOf(x) === 'lua')) {
    const script = get(s, 'script');
    if (script === undefined) problems.push(`${label(s)}: no script`);
    else if (!existsSync(path.resolve(path.dirname(mainFile), script))) problems.push(`${label(s)}: script ${script} does not exist next to ${rel(mainFile)}`);
    if (get(s, 'call') !== 'to_devo') problems.push(`${label(s)}: call must be to_devo, got ${get(s, 'call')}`);
    if (fbBool(get(s, 'enable_flb_null')) !== true) problems.push(`${label(s)}: enable_flb_null must be on (else JSON nulls vanish)`);
  }
  return problems;
}

/** Syslog outputs to Devo: TLS really on, the Devo tag and message keys, no truncation, endless retries. */
function checkSyslogOutputs(sections: Section[]): string[] {
  const problems: string[] = [];
  const want = (s: Section, ok: boolean, what: string) => {
    if (!ok) problems.push(`${label(s)}: ${what}`);
  };
  for (const s of sections.filter((x) => kindOf(x) === 'OUTPUT' && pluginOf(x) === 'syslog')) {
    want(s, get(s, 'mode')?.toLowerCase() === 'tls', 'Mode must be tls');
    want(s, fbBool(get(s, 'tls')) === true, 'tls must be on (before Fluent Bit 5.1.0 "Mode tls" alone sends plaintext)');
    want(s, fbBool(get(s, 'tls.verify')) !== false, 'tls.verify must not be off');
    for (const k of ['tls.ca_file', 'tls.crt_file', 'tls.key_file', 'tls.vhost', 'host', 'port', 'match']) want(s, get(s, k) !== undefined, `${k} must be set`);
    want(s, get(s, 'syslog_format')?.toLowerCase() === 'rfc3164', 'Syslog_Format must be rfc3164 (the line Devo expects)');
    want(s, get(s, 'syslog_appname_key') === 'devo_tag', 'Syslog_Appname_Key must be devo_tag');
    want(s, get(s, 'syslog_message_key') === 'message', 'Syslog_Message_Key must be message');
    want(s, get(s, 'syslog_hostname_preset') !== undefined, 'Syslog_Hostname_Preset must be set (else the Devo tag lands in the hostname slot)');
    const max = fbSize(get(s, 'syslog_maxsize'));
    want(s, max > 65535, `Syslog_Maxsize must be above 65535 (got ${get(s, 'syslog_maxsize')}); longer messages are cut silently`);
    want(s, ['no_limits', 'false', 'off'].includes((get(s, 'retry_limit') ?? '').toLowerCase()), `Retry_Limit must be no_limits or False, got ${get(s, 'retry_limit')}`);
    want(s, fbSize(get(s, 'storage.total_limit_size')) > 0, 'storage.total_limit_size must bound the disk queue');
  }
  return problems;
}

/** Fluent Bit's Match: `*` is the only wildcard. Match_Regex: a regular expression. */
function matches(s: Section, tag: string): boolean {
  const m = get(s, 'match');
  if (m !== undefined) return new RegExp(`^${m.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(tag);
  const r = get(s, 'match_regex');
  return r !== undefined && new RegExp(r).test(tag);
}

/** In a whole pipeline: audit and status records reach an output, shaped for Devo first. */
function checkRouting(sections: Section[]): string[] {
  const problems: string[] = [];
  const filters = sections.filter((s) => kindOf(s) === 'FILTER');
  const outputs = sections.filter((s) => kindOf(s) === 'OUTPUT');
  for (const tag of [AUDIT_TAG, STATUS_TAG, STATUS_TAG_DEVO]) {
    const outs = outputs.filter((o) => matches(o, tag));
    if (outs.length === 0) problems.push(`no output matches ${tag}`);
    if (!outs.some((o) => pluginOf(o) === 'syslog')) continue;
    const chain = filters.filter((f) => matches(f, tag));
    const lua = chain.findIndex((f) => pluginOf(f) === 'lua' && get(f, 'call') === 'to_devo');
    if (lua === -1) problems.push(`${tag} reaches a syslog output without the to_devo Lua filter`);
    if (tag !== AUDIT_TAG) {
      const mod = chain.findIndex((f) => pluginOf(f) === 'modify' && all(f, 'set').some((v) => /^devo_tag\s+my\.app\./.test(v)));
      if (mod === -1) problems.push(`${tag}: no modify filter sets a my.app.* devo_tag`);
      else if (mod < lua) problems.push(`${tag}: the modify filter must come after to_devo (which sets devo_tag to the Fluent Bit tag)`);
    }
  }
  return problems;
}

/**
 * A file's pipeline in a comparable form: sections grouped by kind, in file order within a kind
 * (the order that matters to Fluent Bit: filters run in it), keys lower-cased and sorted.
 */
function canonical(sections: Section[], mainFile: string, dropStdout: boolean): string[] {
  const order = (s: Section) => (SECTION_KINDS as readonly string[]).indexOf(kindOf(s));
  return sections
    .filter((s) => !(dropStdout && kindOf(s) === 'OUTPUT' && pluginOf(s) === 'stdout'))
    .map((s, i) => ({ s, i }))
    .sort((a, b) => order(a.s) - order(b.s) || a.i - b.i)
    .map(({ s }) => s)
    .map((s) => {
      const entries = s.entries.map((e) => {
        const key = e.key.toLowerCase();
        const value = key === 'script' ? rel(path.resolve(path.dirname(mainFile), e.value)) : e.value;
        return `${key}=${value}`;
      });
      return `[${kindOf(s)}] ${entries.sort().join(' ')}`;
    });
}

// ---------------------------------------------------------------------------------------------
// Vector.

const VECTOR_TOP = ['data_dir', 'sources', 'transforms', 'sinks', 'api', 'acknowledgements', 'schema', 'enrichment_tables', 'secret', 'timezone', 'log_schema', 'healthchecks', 'proxy', 'tests', 'expire_metrics_secs'];
const VECTOR_TLS = ['enabled', 'crt_file', 'key_file', 'ca_file', 'key_pass', 'verify_certificate', 'verify_hostname', 'alpn_protocols', 'client_metadata_key', 'server_name'];
const VECTOR_COMPONENTS: Record<string, Record<string, string[]>> = {
  sources: { fluent: ['type', 'address', 'tls', 'keepalive', 'receive_buffer_bytes', 'connection_limit', 'permit_origin', 'acknowledgements', 'log_namespace'] },
  transforms: {
    route: ['type', 'inputs', 'route', 'reroute_unmatched'],
    remap: ['type', 'inputs', 'source', 'file', 'files', 'drop_on_error', 'drop_on_abort', 'reroute_dropped', 'timezone', 'metric_tag_values'],
  },
  sinks: {
    socket: ['type', 'inputs', 'address', 'mode', 'path', 'encoding', 'framing', 'tls', 'keepalive', 'send_buffer_bytes', 'acknowledgements', 'buffer', 'healthcheck', 'unix_mode'],
    console: ['type', 'inputs', 'encoding', 'framing', 'target', 'acknowledgements', 'buffer', 'healthcheck'],
  },
};

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

function checkVector(doc: Obj, where: string): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(doc)) if (!VECTOR_TOP.includes(k)) problems.push(`${where}: unknown top-level key ${k}`);
  const sources = obj(doc.sources);
  const transforms = obj(doc.transforms);
  const sinks = obj(doc.sinks);
  // Known keys per component type, and TLS keys.
  for (const [section, comps] of [['sources', sources], ['transforms', transforms], ['sinks', sinks]] as const) {
    for (const [id, c] of Object.entries(comps)) {
      const type = String(obj(c).type);
      const allowed = VECTOR_COMPONENTS[section][type];
      if (!allowed) {
        problems.push(`${where}: ${section}.${id}: no allow-list for type "${type}" (add its documented options to this test)`);
        continue;
      }
      for (const k of Object.keys(obj(c))) if (!allowed.includes(k)) problems.push(`${where}: ${section}.${id}: unknown option ${k}`);
      for (const k of Object.keys(obj(obj(c).tls))) if (!VECTOR_TLS.includes(k)) problems.push(`${where}: ${section}.${id}.tls: unknown option ${k}`);
    }
  }
  // Every `inputs` entry names a source, a transform, or a named output of one.
  const outputs = new Set<string>([...Object.keys(sources), ...Object.keys(transforms)]);
  for (const [id, t] of Object.entries(transforms)) {
    const c = obj(t);
    if (c.type === 'route') for (const r of [...Object.keys(obj(c.route)), '_unmatched']) outputs.add(`${id}.${r}`);
    if (c.type === 'remap' && c.reroute_dropped === true) outputs.add(`${id}.dropped`);
  }
  const edges = new Map<string, string[]>();
  for (const [section, comps] of [['transforms', transforms], ['sinks', sinks]] as const) {
    for (const [id, c] of Object.entries(comps)) {
      const inputs = obj(c).inputs;
      if (!Array.isArray(inputs) || inputs.length === 0) problems.push(`${where}: ${section}.${id} has no inputs`);
      for (const i of Array.isArray(inputs) ? inputs : []) {
        if (!outputs.has(String(i))) problems.push(`${where}: ${section}.${id}: input "${String(i)}" names no source, transform or route`);
        const from = String(i).split('.')[0];
        edges.set(from, [...(edges.get(from) ?? []), id]);
      }
    }
  }
  // The collector's fluent source.
  const fluent = Object.entries(sources).filter(([, c]) => obj(c).type === 'fluent');
  if (fluent.length === 0) problems.push(`${where}: no source of type fluent`);
  for (const [id, c] of fluent) {
    if (obj(c).address !== `${DEFAULTS.forwardHost}:${DEFAULTS.forwardPort}`) problems.push(`${where}: sources.${id}.address must be ${DEFAULTS.forwardHost}:${DEFAULTS.forwardPort}, got ${String(obj(c).address)}`);
  }
  // The Devo sink: TLS socket, one line per event, end-to-end acks, reachable from the source.
  const devo = Object.entries(sinks).filter(([, c]) => obj(c).type === 'socket');
  if (devo.length === 0) problems.push(`${where}: no socket sink to Devo`);
  for (const [id, c] of devo) {
    const s = obj(c);
    const tls = obj(s.tls);
    const want = (ok: boolean, what: string) => {
      if (!ok) problems.push(`${where}: sinks.${id}: ${what}`);
    };
    want(s.mode === 'tcp', 'mode must be tcp');
    want(/:\d+$/.test(String(s.address)), 'address must include a port');
    want(tls.enabled === true, 'tls.enabled must be true');
    for (const k of ['crt_file', 'key_file', 'ca_file']) want(typeof tls[k] === 'string', `tls.${k} must be set`);
    want(tls.verify_certificate !== false, 'tls.verify_certificate must not be false');
    want(obj(s.encoding).codec === 'text', 'encoding.codec must be text');
    want(obj(s.framing).method === 'newline_delimited', 'framing.method must be newline_delimited');
    want(obj(s.acknowledgements).enabled === true, 'acknowledgements.enabled must be true (end-to-end acks)');
    const reached = new Set<string>();
    const queue = fluent.map(([sid]) => sid);
    while (queue.length > 0) {
      const n = queue.shift()!;
      for (const next of edges.get(n) ?? []) if (!reached.has(next)) reached.add(next) && queue.push(next);
    }
    want(reached.has(id), 'is not fed from the fluent source');
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Tests.

const loaded = new Map(fluentBitFiles.map((f) => [f, loadFluentBit(f)]));
const sectionsOf = (f: string) => loaded.get(f)!.sections;

test('every shipped Fluent Bit file parses, its @INCLUDEs exist and every key is documented for its plugin', () => {
  assert.ok(fluentBitFiles.length >= 8, `expected the example and the plugin/fluent-bit files, got ${fluentBitFiles.map(rel).join(', ')}`);
  const problems = fluentBitFiles.flatMap((f) => [...loaded.get(f)!.problems, ...checkKeys(sectionsOf(f))]);
  assert.deepEqual(problems, []);
  for (const f of pipelines) {
    const kinds = sectionsOf(f).map(kindOf);
    for (const k of ['SERVICE', 'INPUT', 'OUTPUT']) assert.ok(kinds.includes(k), `${rel(f)} has no [${k}]`);
  }
});

test('m365-forward.conf only @INCLUDEs the snippets, and each snippet exists', () => {
  const lines = readFileSync(snippetsMain, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  assert.ok(lines.length >= 4);
  for (const l of lines) assert.match(l, /^@INCLUDE \S+\.conf$/);
  assert.deepEqual(loaded.get(snippetsMain)!.problems, []);
});

test('the forward input listens on the collector\'s default address and fits its largest frame', () => {
  let inputs = 0;
  for (const f of fluentBitFiles) {
    inputs += sectionsOf(f).filter((s) => kindOf(s) === 'INPUT' && pluginOf(s) === 'forward').length;
    assert.deepEqual(checkForwardInputs(sectionsOf(f)), [], rel(f));
    // Filesystem buffering needs storage.path in the same pipeline.
    const svc = sectionsOf(f).find((s) => kindOf(s) === 'SERVICE');
    if (svc && sectionsOf(f).some((s) => get(s, 'storage.type') === 'filesystem')) assert.ok(get(svc, 'storage.path'), `${rel(f)}: storage.path`);
  }
  assert.ok(inputs >= 5, `forward inputs checked: ${inputs}`);
  assert.equal(fbSize('6M'), 6_000_000);
  assert.equal(fbSize('1M') > DEFAULTS.maxFrameBytes, false, 'Fluent Bit\'s 1M is 1,000,000 bytes, below 1 MiB');
});

test('the Lua filters run devo.lua\'s to_devo with nulls kept, before any filter that needs the Devo shape', () => {
  let luas = 0;
  for (const f of fluentBitFiles) {
    luas += sectionsOf(f).filter((s) => pluginOf(s) === 'lua').length;
    assert.deepEqual(checkLuaFilters(sectionsOf(f), f), [], rel(f));
  }
  assert.ok(luas >= 6, `Lua filters checked: ${luas}`);
  const audit = sectionsOf(example).find((s) => pluginOf(s) === 'lua' && matches(s, AUDIT_TAG));
  assert.equal(get(audit!, 'match'), 'cloud.office365.management.*');
  assert.equal(get(audit!, 'script'), 'plugin/fluent-bit/devo.lua');
});

test('the syslog outputs to Devo use TLS, the Devo tag and message keys, no truncation and endless retries', () => {
  let outputs = 0;
  for (const f of fluentBitFiles) {
    outputs += sectionsOf(f).filter((s) => pluginOf(s) === 'syslog').length;
    assert.deepEqual(checkSyslogOutputs(sectionsOf(f)), [], rel(f));
  }
  assert.ok(outputs >= 6, `syslog outputs checked: ${outputs}`);
});

test('in every whole pipeline audit and status records reach an output, shaped for Devo first', () => {
  for (const f of pipelines) assert.deepEqual(checkRouting(sectionsOf(f)), [], rel(f));
  // The one-file example also prints everything for a local try.
  assert.ok(sectionsOf(example).some((s) => pluginOf(s) === 'stdout' && get(s, 'match') === '*' && get(s, 'format') === 'json_lines'));
});

test('fluent-bit.yaml and fluent-bit.conf.example hold the same pipeline as m365-forward.conf', () => {
  const snippets = canonical(sectionsOf(snippetsMain), snippetsMain, false);
  assert.deepEqual(canonical(sectionsOf(yamlMain), yamlMain, false), snippets);
  assert.deepEqual(canonical(sectionsOf(example), example, true), snippets);
});

test('vector.yaml: fluent source on the collector\'s address, every inputs entry exists, Devo sink with TLS and acks', () => {
  assert.ok(vectorFiles.length >= 1);
  for (const f of vectorFiles) {
    const doc = obj(parseYaml(readFileSync(f, 'utf8')));
    assert.deepEqual(checkVector(doc, rel(f)), []);
    const remap = Object.values(obj(doc.transforms)).map(obj).find((t) => t.type === 'remap');
    assert.match(String(remap?.source), /"<14>"/);
    assert.match(String(remap?.source), /encode_json\(\.\)/);
  }
});

test('self-check: the checkers fail on broken configurations', () => {
  const classic = (text: string) => {
    const l = loadClassic(path.join(fbDir, 'inline-test.conf'), text);
    return [...l.problems, ...checkKeys(l.sections), ...checkForwardInputs(l.sections), ...checkSyslogOutputs(l.sections)];
  };
  const input = (extra: string) => `[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port 24224\n    Buffer_Max_Size 6M\n    storage.type filesystem\n${extra}`;
  assert.deepEqual(classic(input('')), []);
  assert.match(classic(input('    Buffer_Max_Sise 6M\n')).join('\n'), /unknown key "Buffer_Max_Sise"/);
  assert.match(classic(input('    shared_key secret\n')).join('\n'), /shared_key must not be set/);
  assert.match(classic(input('    Port 24224 # the default\n')).join('\n'), /no inline comments/);
  assert.match(classic(input('').replace('6M', '1M')).join('\n'), /must exceed the collector's max_frame_bytes 1048576/);
  assert.match(classic(input('').replace('    Listen', '  Listen')).join('\n'), /indentation/);
  assert.match(classic(`[INPTU]\n    Name forward\n`).join('\n'), /unknown section \[INPTU\]/);
  assert.match(classic(`[OUTPUT]\n    Name kafka\n    Match *\n`).join('\n'), /no allow-list for output plugin "kafka"/);
  assert.match(classic(`@INCLUDE no-such-file.conf\n`).join('\n'), /does not exist/);
  const syslog = readFileSync(path.join(fbDir, 'output-devo.conf'), 'utf8');
  assert.deepEqual(classic(syslog), []);
  assert.match(classic(syslog.replace(/^ {4}tls {2,}on$/m, '    tls off')).join('\n'), /tls must be on/);
  assert.match(classic(syslog.replace(/^ {4}Syslog_Maxsize .*$/m, '    Syslog_Maxsize 1024')).join('\n'), /Syslog_Maxsize must be above 65535/);
  assert.match(classic(syslog.replace(/^ {4}Retry_Limit .*$/m, '    Retry_Limit 5')).join('\n'), /Retry_Limit must be no_limits/);

  const lua = loadClassic(path.join(fbDir, 'inline-test.conf'), '[FILTER]\n    Name lua\n    Match *\n    script nope.lua\n    call to_devo\n');
  assert.match(checkLuaFilters(lua.sections, path.join(fbDir, 'inline-test.conf')).join('\n'), /nope\.lua does not exist[\s\S]*enable_flb_null/);

  const vector = obj(parseYaml(readFileSync(vectorFiles[0], 'utf8')));
  const broken = structuredClone(vector);
  obj(obj(broken.sinks).devo).inputs = ['devo_lines'];
  assert.match(checkVector(broken, 'x').join('\n'), /input "devo_lines" names no source/);
  const noAcks = structuredClone(vector);
  delete obj(obj(noAcks.sinks).devo).acknowledgements;
  assert.match(checkVector(noAcks, 'x').join('\n'), /acknowledgements\.enabled must be true/);
});

// ---------------------------------------------------------------------------------------------
// The shippers themselves, where installed.

/**
 * A copy of the shipped Fluent Bit files in a temp folder, with the same layout (fluent-bit.conf.example
 * at its root, the rest under plugin/fluent-bit/, so relative `script` and @INCLUDE paths resolve as
 * in the repository), where every tls.*_file the configs name is a throwaway certificate or key made
 * now, and every storage.path a folder inside the copy. Fluent Bit 5.1.1's --dry-run does not open
 * certificate files nor create storage.path (see test/helpers/fluent-bit.ts), but a full start does:
 * the copy keeps this check meaningful should --dry-run start to, and never touches /etc or /var.
 * The copies differ from the originals in those paths only.
 */
async function mirrorWithThrowawayFiles(): Promise<{ root: string; copyOf: (f: string) => string; replaced: Map<string, string>; keys: Set<string> }> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'm365-shipper-configs-'));
  try {
    const { certPem, keyPem } = await generateClientCertificate({ commonName: 'm365-forward dry-run (throwaway)' });
    const replaced = new Map<string, string>();
    const keys = new Set<string>();
    for (const f of fluentBitFiles) {
      for (const s of sectionsOf(f)) {
        for (const e of s.entries) {
          const key = e.key.toLowerCase();
          if (replaced.has(e.value)) continue;
          if (['tls.ca_file', 'tls.crt_file', 'tls.key_file', 'storage.path'].includes(key)) keys.add(key);
          if (key === 'tls.ca_file' || key === 'tls.crt_file' || key === 'tls.key_file') {
            const target = path.join(root, 'tls', `${replaced.size}-${path.basename(e.value)}`);
            mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
            writeFileSync(target, key === 'tls.key_file' ? keyPem : certPem, { mode: 0o600 });
            replaced.set(e.value, target);
          } else if (key === 'storage.path') {
            replaced.set(e.value, path.join(root, 'storage', String(replaced.size)));
          }
        }
      }
    }
    const copyOf = (f: string) => path.join(root, rel(f));
    const sources = [...fluentBitFiles, ...readdirSync(fbDir).filter((f) => !fluentBitFiles.includes(path.join(fbDir, f))).map((f) => path.join(fbDir, f))];
    for (const f of sources) {
      let text = readFileSync(f, 'utf8');
      for (const [from, to] of replaced) text = text.split(from).join(to);
      mkdirSync(path.dirname(copyOf(f)), { recursive: true });
      writeFileSync(copyOf(f), text);
    }
    return { root, copyOf, replaced, keys };
  } catch (e) {
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}

function dryRun(binary: string, file: string, cwd: string): { ok: boolean; output: string } {
  const r = spawnSync(binary, ['--dry-run', '-c', file], { cwd, encoding: 'utf8', timeout: 60_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`;
  return { ok: r.status === 0 && /configuration test is successful/.test(output), output };
}

test('fluent-bit --dry-run accepts every shipped Fluent Bit file, from the repository root and from its own folder', async (t) => {
  const fluentBit = needFluentBit(t);
  if (!fluentBit) return;
  const mirror = await mirrorWithThrowawayFiles();
  try {
    // The Devo outputs' certificate files and the storage paths were found and redirected.
    assert.deepEqual([...mirror.keys].sort(), ['storage.path', 'tls.ca_file', 'tls.crt_file', 'tls.key_file']);
    for (const f of fluentBitFiles) {
      const copy = mirror.copyOf(f);
      for (const [from, to] of mirror.replaced) assert.ok(!readFileSync(copy, 'utf8').includes(from), `${rel(f)} still names ${from} (not ${to})`);
      for (const cwd of [mirror.root, path.dirname(copy)]) {
        const r = dryRun(fluentBit, copy, cwd);
        assert.ok(r.ok, `fluent-bit --dry-run -c ${rel(f)} (from ${path.relative(mirror.root, cwd) || 'the repository root'}) failed:\n${r.output}`);
      }
    }
    // --dry-run really checks: an unknown key and a missing Lua script fail it.
    const devo = mirror.copyOf(path.join(fbDir, 'output-devo.conf'));
    writeFileSync(devo, readFileSync(devo, 'utf8').replace(/^(\[OUTPUT\]\n)/m, '$1    Syslog_Bogus_Key 1\n'));
    const bogus = dryRun(fluentBit, devo, mirror.root);
    assert.equal(bogus.ok, false, 'an unknown key passed --dry-run');
    assert.match(bogus.output, /unknown configuration property 'syslog_bogus_key'/);
    rmSync(mirror.copyOf(path.join(fbDir, 'devo.lua')));
    const noLua = dryRun(fluentBit, mirror.copyOf(path.join(fbDir, 'filter-devo.conf')), mirror.root);
    assert.equal(noLua.ok, false, 'a missing Lua script passed --dry-run');
  } finally {
    rmSync(mirror.root, { recursive: true, force: true });
  }
});

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

const vector = onPath('vector');
test('vector validate --no-environment accepts vector.yaml', {
  skip: vector ? false : 'no vector binary on PATH (none exists in this machine\'s package registries)',
}, () => {
  for (const f of vectorFiles) {
    const r = spawnSync(vector!, ['validate', '--no-environment', f], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `vector validate --no-environment ${rel(f)}:\n${r.stdout}\n${r.stderr}`);
  }
});
