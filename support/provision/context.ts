/**
 * What provisioning functions share (clients, the target, the setup, the run's id and ledger), and
 * the record of the infrastructure they build or find.
 */
import type { Clients } from '../clients.ts';
import type { HarnessConfig } from '../config.ts';
import type { Ledger } from '../ledger.ts';
import type { Jwks } from '../oidc/jwks.ts';
import type { InfrastructureState } from '../run-state.ts';
import type { LoadedSetup } from '../setup/setup.ts';
import type { TargetDescriptor } from '../targets/target.ts';

export interface ProvisionContext {
  clients: Clients;
  target: TargetDescriptor;
  setup: LoadedSetup;
  config: HarnessConfig;
  runId: string;
  ledger: Ledger;
  /** Ledger scope: 'run' for the infrastructure, the scenario's id for tenants. */
  scope: string;
  /** Progress and warnings, redacted by the caller's logger. */
  log: (line: string) => void;
}

/** What the infrastructure checks need beyond the shared state: what was built and from what. */
export interface InfrastructureRecord extends InfrastructureState {
  clusterIssuer: string;
  clusterKeySource: string;
  clusterKids: string[];
  discoveryDocument: Record<string, unknown>;
  jwks: Jwks;
  created: string[];
}
