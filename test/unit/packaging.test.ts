/**
 * The packaging we ship for operators, checked as files: the systemd unit (and `systemd-analyze
 * verify` where systemd is installed), the container image's Dockerfile, and the Kubernetes
 * manifests (valid YAML, one collector beside Fluent Bit, state on a claim, the secret as a file),
 * whose embedded collector config passes our own loader and whose Fluent Bit config passes the
 * real Fluent Bit's --dry-run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseConfig, parseYamlText } from '../../src/config/load.ts';
import { repoRoot } from '../helpers/cli.ts';
import { needFluentBit } from '../helpers/fluent-bit.ts';

const conf = path.join(repoRoot, 'conf');
const unitFile = path.join(conf, 'systemd', 'm365-forward.service');
const dockerfile = path.join(conf, 'container', 'Dockerfile');
const k8sFile = path.join(conf, 'kubernetes', 'm365-forward.yaml');

/** `Key=value` lines of a unit file by section (keys may repeat). */
function unitDirectives(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      current = s[1]!;
      sections.set(current, []);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && current, `unit line is not Key=value inside a section: ${line}`);
    sections.get(current)!.push([kv[1]!, kv[2]!]);
  }
  return sections;
}

test('systemd unit: hardened, dynamic user, state directory, the secret as a credential, no restart loop on a bad config', () => {
  const d = unitDirectives(readFileSync(unitFile, 'utf8'));
  const service = new Map(d.get('Service')!.map(([k, v]) => [k, v]));
  assert.equal(service.get('DynamicUser'), 'yes');
  assert.equal(service.get('StateDirectory'), 'm365-forward');
  assert.equal(service.get('ProtectSystem'), 'strict');
  assert.match(service.get('LoadCredential') ?? '', /^client_secret:\/etc\/m365-forward\/client_secret$/);
  assert.match(service.get('ExecStart') ?? '', /^\/\S+\/m365-forward run -c \/etc\/m365-forward\/config\.yaml --state \/var\/lib\/m365-forward\/state\.json$/);
  assert.equal(service.get('NoNewPrivileges'), 'yes');
  assert.equal(service.has('MemoryDenyWriteExecute'), false, "V8's JIT needs writable executable memory");
  assert.match(service.get('RestartPreventExitStatus') ?? '', /\b2\b.*\b3\b/);
  assert.ok(d.get('Install')!.some(([k, v]) => k === 'WantedBy' && v === 'multi-user.target'));
});

test('systemd-analyze verify accepts the unit', (t) => {
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.skip('no systemd-analyze on this machine (Debian: apt-get install systemd)');
    return;
  }
  // verify also checks that ExecStart's program exists: a stand-in at a path of our own.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-unit-'));
  try {
    const bin = path.join(dir, 'm365-forward');
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    const unit = path.join(dir, 'm365-forward.service');
    writeFileSync(unit, readFileSync(unitFile, 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${bin}`));
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
    // It really checks: an unknown directive fails it.
    writeFileSync(unit, readFileSync(unit, 'utf8').replace('[Service]\n', '[Service]\nProtectEverything=yes\n'));
    const bad = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
    assert.match(`${bad.stdout}${bad.stderr}`, /Unknown key( name)? '?ProtectEverything'?/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Dockerfile: Node 20 slim, a non-root user, state on a volume, the files it copies exist', () => {
  const lines = readFileSync(dockerfile, 'utf8').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  assert.match(lines[0]!, /^FROM node:20(\.\d+)*-slim\b/);
  const users = lines.filter((l) => l.startsWith('USER '));
  assert.equal(users.length, 1);
  assert.doesNotMatch(users[0]!, /^USER (root|0)\b/);
  const volume = lines.find((l) => l.startsWith('VOLUME '));
  assert.match(volume ?? '', /"\/var\/lib\/m365-forward"/);
  assert.match(lines.find((l) => l.startsWith('CMD '))!, /--state", "\/var\/lib\/m365-forward\/state\.json"/);
  for (const l of lines.filter((x) => x.startsWith('COPY '))) {
    for (const src of l.split(/\s+/).slice(1, -1)) assert.ok(existsSync(path.join(repoRoot, src)), `COPY ${src}: no such file in the repository`);
  }
  assert.ok(lines.some((l) => /npm ci --omit=dev/.test(l)), 'installs the locked dependencies only');
});

function k8sDocs(): Record<string, any>[] {
  const docs = parseAllDocuments(readFileSync(k8sFile, 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], `${k8sFile}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS() as Record<string, any>);
}

test('Kubernetes: valid YAML; one collector beside Fluent Bit over loopback, state on a claim, the secret mounted as a file', () => {
  const docs = k8sDocs();
  const kinds = docs.map((d) => d.kind).sort();
  assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'PersistentVolumeClaim']);
  for (const d of docs) assert.ok(d.apiVersion && d.metadata?.name, `${d.kind} has apiVersion and metadata.name`);
  const deploy = docs.find((d) => d.kind === 'Deployment')!;
  assert.equal(deploy.spec.replicas, 1);
  assert.equal(deploy.spec.strategy.type, 'Recreate');
  const pod = deploy.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const names = pod.containers.map((c: any) => c.name).sort();
  assert.deepEqual(names, ['collector', 'fluent-bit']);
  const collector = pod.containers.find((c: any) => c.name === 'collector');
  const volumes = new Map<string, any>(pod.volumes.map((v: any) => [v.name, v]));
  const pvc = docs.find((d) => d.kind === 'PersistentVolumeClaim')!;
  const mountOf = (c: any, pred: (v: any) => boolean) => c.volumeMounts.find((m: any) => pred(volumes.get(m.name)));
  for (const c of pod.containers) assert.ok(mountOf(c, (v) => v?.persistentVolumeClaim?.claimName === pvc.metadata.name), `${c.name} mounts the state claim`);
  const secretMount = mountOf(collector, (v) => v?.secret !== undefined && v.name === 'credentials');
  assert.ok(secretMount, 'the collector mounts the credentials Secret');
  assert.equal(collector.env, undefined, 'no secret in the environment');
  // The collector's config, as mounted: it names the secret file and the state on the claim.
  const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
  const args: string[] = collector.args;
  const configPath = args[args.indexOf('-c') + 1]!;
  const configMount = collector.volumeMounts.find((m: any) => configPath.startsWith(`${m.mountPath}/`));
  assert.equal(volumes.get(configMount.name)?.configMap?.name, configMap.metadata.name);
  const tree = parseYamlText(configMap.data[path.basename(configPath)], configPath) as any;
  const secretPath = tree.tenants[0].client_secret_file;
  assert.ok(secretPath.startsWith(`${secretMount.mountPath}/`), `client_secret_file ${secretPath} is in the Secret's mount`);
  const stateMount = mountOf(collector, (v) => v?.persistentVolumeClaim !== undefined);
  assert.ok(tree.state.path.startsWith(`${stateMount.mountPath}/`), 'the checkpoint is on the claim');
  // It passes the collector's own loader (the secret file read as if mounted).
  const config = parseConfig(tree, configPath, {}, {
    env: {},
    readFile: (f) => {
      assert.equal(f, secretPath);
      return 'a-client-secret-value-of-forty-characters';
    },
  });
  assert.equal(config.output.forward.host, '127.0.0.1');
  const fbInput = parseYamlText(configMap.data['fluent-bit.yaml'], 'fluent-bit.yaml') as any;
  const forward = fbInput.pipeline.inputs.find((i: any) => i.name === 'forward');
  assert.equal(forward.listen, '127.0.0.1');
  assert.equal(forward.port, config.output.forward.port);
  assert.equal(config.output.recordFormat, 'devo', 'Fluent Bit there has no Lua filter');
});

test('Kubernetes: the pod\'s Fluent Bit config passes fluent-bit --dry-run', (t) => {
  const fluentBit = needFluentBit(t);
  if (!fluentBit) return;
  const configMap = k8sDocs().find((d) => d.kind === 'ConfigMap')!;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-k8s-fb-'));
  try {
    const file = path.join(dir, 'fluent-bit.yaml');
    writeFileSync(file, configMap.data['fluent-bit.yaml']);
    const r = spawnSync(fluentBit, ['--dry-run', '-c', file], { encoding: 'utf8', timeout: 60_000 });
    assert.ok(r.status === 0 && /configuration test is successful/.test(`${r.stdout}${r.stderr}`), `fluent-bit --dry-run:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
