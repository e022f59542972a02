import { stringify } from 'yaml';

/**
 * The collector config that points at a running simulator (`simulate --write-config`, `demo`).
 * The initial look-back covers the simulator's span plus an hour, so `run --once` collects every
 * record it serves.
 */
export interface SimulatorEndpoint {
  apiUrl: string;
  loginUrl: string;
  /** The only tenant's credentials, or tenant 1's when `tenants` is given. */
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caFile: string;
  /** Every tenant the simulator serves, in index order (default: the one above). */
  tenants?: readonly SimulatorTenantCredentials[];
}

/** One simulated tenant's app, as the config names it. */
export interface SimulatorTenantCredentials {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/**
 * The config name of tenant `index` (1-based) of `count`: `simulator` when it is the only one
 * (what every single-tenant config has always said), else `sim-01`, `sim-02`, ... zero-padded to
 * the width of `count` (at least two digits), so the names sort in index order.
 */
export function simulatorTenantName(index: number, count: number): string {
  if (count === 1) return 'simulator';
  return `sim-${String(index).padStart(Math.max(2, String(count).length), '0')}`;
}

/** The config tree (YAML via simulatorConfigYaml): one `tenants:` entry per simulated tenant, the shared hosts and CA. */
export function simulatorConfigTree(
  sim: SimulatorEndpoint,
  opts: { spanHours: number; statePath: string; output?: 'forward' | 'stdout'; recordFormat?: 'record' | 'devo'; forwardHost?: string; forwardPort?: number },
): Record<string, unknown> {
  const lookbackHours = Math.min(7 * 24 - 1, Math.ceil(opts.spanHours) + 1);
  const apps = sim.tenants?.length ? sim.tenants : [sim];
  return {
    tenants: apps.map((t, i) => ({
      name: simulatorTenantName(i + 1, apps.length),
      tenant_id: t.tenantId,
      client_id: t.clientId,
      // The simulator's own throwaway secret; a real tenant's belongs in client_secret_env or client_secret_file.
      client_secret: t.clientSecret,
      api_url: sim.apiUrl,
      login_url: sim.loginUrl,
    })),
    api: { ca_file: sim.caFile },
    output: {
      type: opts.output ?? 'forward',
      record_format: opts.recordFormat ?? 'record',
      forward: { host: opts.forwardHost ?? '127.0.0.1', port: opts.forwardPort ?? 24224 },
    },
    state: { path: opts.statePath },
    polling: { interval: '60s', initial_lookback: `${lookbackHours}h`, overlap: '2h' },
  };
}

export function simulatorConfigYaml(tree: Record<string, unknown>): string {
  return (
    '# m365-forward collector config for the embedded simulator (written by `m365-forward simulate --write-config`).\n' +
    '# Every key is documented in README.md, "Configuration reference".\n' +
    stringify(tree)
  );
}
