import { stringify } from 'yaml';

/**
 * The collector config that points at a running simulator (`simulate --write-config`, `demo`).
 * The initial look-back covers the simulator's span plus an hour, so `run --once` collects every
 * record it serves.
 */
export interface SimulatorEndpoint {
  apiUrl: string;
  loginUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caFile: string;
}

export function simulatorConfigTree(
  sim: SimulatorEndpoint,
  opts: { spanHours: number; statePath: string; output?: 'forward' | 'stdout'; recordFormat?: 'record' | 'devo'; forwardHost?: string; forwardPort?: number },
): Record<string, unknown> {
  const lookbackHours = Math.min(7 * 24 - 1, Math.ceil(opts.spanHours) + 1);
  return {
    tenants: [
      {
        name: 'simulator',
        tenant_id: sim.tenantId,
        client_id: sim.clientId,
        // The simulator's own throwaway secret; a real tenant's belongs in client_secret_env or client_secret_file.
        client_secret: sim.clientSecret,
        api_url: sim.apiUrl,
        login_url: sim.loginUrl,
      },
    ],
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
