/**
 * Cucumber coordinator plugin for the tenant isolation matrix (features/05-tenant-isolation.feature).
 *
 * The number of tenants is a setting (IRSA_TENANTS, `tenants`), but Gherkin has no loops and a
 * plugin cannot add scenarios, only filter and order them (cucumber 13: `pickles:filter`,
 * `pickles:order`). So the matrix's Scenario Outlines list tenants 1..M in their Examples (M the
 * largest number the suite supports), and this filter keeps the rows whose `tenant` is at most the
 * setting. Raising the setting really adds tenants, up to M; asking for more than M is bad input
 * (UsageError, exit 2) before anything is created.
 *
 * Tenants are run-scoped (support/provision/tenants.ts): when the suite has finished, this
 * plugin's cleanup deletes every tenant's resources, one tenant per concurrent flush, so that
 * tenants cost the run their slowest deletion (a namespace) once rather than one after another.
 * After a failed matrix scenario with IRSA_KEEP_ON_FAILURE they are kept instead.
 *
 * Scenarios take part when tagged @tenant-matrix; their Examples need a `tenant` column.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { IFilterablePickle } from '@cucumber/cucumber/api';
import type { Envelope, GherkinDocument } from '@cucumber/messages';
import { flushLedger } from '../cleanup.ts';
import { createClients } from '../clients.ts';
import { loadConfig } from '../config.ts';
import { formatUsageError, isUsageError, UsageError } from '../errors.ts';
import { Ledger } from '../ledger.ts';
import { TENANT_SCOPE_PREFIX } from '../provision/tenants.ts';
import { type RunState, readRunState } from '../run-state.ts';

export const MATRIX_TAG = '@tenant-matrix';
export const TENANT_COLUMN = 'tenant';

/** The `tenant` cell of a pickle's Examples row, and the largest tenant its outline lists. */
export function tenantOfPickle(p: IFilterablePickle): { tenant: number; max: number; outline: string } | undefined {
  if (!p.pickle.tags.some((t) => t.name === MATRIX_TAG)) return undefined;
  const [scenarioId, rowId] = p.pickle.astNodeIds;
  const where = `${p.pickle.uri}: "${p.pickle.name}"`;
  const scenario = scenarioOf(p.gherkinDocument, scenarioId);
  if (!scenario || rowId === undefined) {
    throw new UsageError(
      `${where} is tagged ${MATRIX_TAG} but is not a Scenario Outline row`,
      `tag only Scenario Outlines whose Examples have a "${TENANT_COLUMN}" column with ${MATRIX_TAG}`,
    );
  }
  let tenant: number | undefined;
  const numbers: number[] = [];
  for (const examples of scenario.examples) {
    const col = (examples.tableHeader?.cells ?? []).findIndex((c) => c.value === TENANT_COLUMN);
    if (col < 0) {
      throw new UsageError(
        `the Examples of ${where} have no "${TENANT_COLUMN}" column`,
        `add a "${TENANT_COLUMN}" column numbering the tenants 1, 2, 3, …`,
      );
    }
    for (const row of examples.tableBody) {
      const raw = row.cells[col]?.value ?? '';
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) {
        throw new UsageError(
          `${where}: tenant ${JSON.stringify(raw)} is not a positive integer`,
          `number the tenants of the ${TENANT_COLUMN} column 1, 2, 3, …`,
        );
      }
      numbers.push(n);
      if (row.id === rowId) tenant = n;
    }
  }
  if (tenant === undefined) return undefined;
  return { tenant, max: Math.max(...numbers), outline: `${p.pickle.uri}:${scenario.location.line}` };
}

function scenarioOf(doc: GherkinDocument, id: string | undefined) {
  for (const child of doc.feature?.children ?? []) {
    if (child.scenario?.id === id) return child.scenario;
    for (const r of child.rule?.children ?? []) if (r.scenario?.id === id) return r.scenario;
  }
  return undefined;
}

/** Keeps every pickle except matrix rows above `tenants`; refuses a setting above an outline's rows. */
export function filterTenantMatrix(pickles: readonly IFilterablePickle[], tenants: number): IFilterablePickle[] {
  const kept: IFilterablePickle[] = [];
  for (const p of pickles) {
    const row = tenantOfPickle(p);
    if (row && tenants > row.max) {
      throw new UsageError(
        `IRSA_TENANTS (tenants) is ${tenants}, but the tenant matrix at ${row.outline} lists tenants up to ${row.max}`,
        `lower IRSA_TENANTS to at most ${row.max}, or add rows up to tenant ${tenants} to the Examples of that outline`,
      );
    }
    if (!row || row.tenant <= tenants) kept.push(p);
  }
  return kept;
}

function currentRunState(env: Record<string, string | undefined>): RunState | undefined {
  const file = env.IRSA_RUN_STATE;
  return file && existsSync(file) ? readRunState(file) : undefined;
}

interface CoordinatorContext {
  operation: string;
  on(event: 'message', handler: (e: Envelope) => void): void;
  transform(
    event: 'pickles:filter',
    handler: (p: readonly IFilterablePickle[]) => readonly IFilterablePickle[] | Promise<readonly IFilterablePickle[]>,
  ): void;
  environment: { env: Record<string, string | undefined>; cwd: string; stderr: NodeJS.WritableStream };
  logger: { warn(message: string): void; info(message: string): void };
  /** cucumber's pluginOptions; the coordinator puts the run's resolved settings under `irsa`. */
  options?: { irsa?: { tenants?: number } };
}

export default {
  type: 'plugin' as const,
  coordinator(ctx: CoordinatorContext) {
    if (ctx.operation !== 'runCucumber') return undefined;
    // The run's own settings: written by the coordinator for the run (overrides and worldParameters
    // included), or handed over by it before then (its dry run); else the environment's.
    const state = currentRunState(ctx.environment.env);
    const tenants = state?.config.tenants ?? ctx.options?.irsa?.tenants ?? loadConfig(ctx.environment.env).tenants;
    const matrixPickles = new Set<string>();
    const caseToPickle = new Map<string, string>();
    const startedToCase = new Map<string, string>();
    let matrixFailed = false;
    ctx.transform('pickles:filter', (pickles) => {
      let kept: IFilterablePickle[];
      try {
        kept = filterTenantMatrix(pickles, tenants);
      } catch (e) {
        // Cucumber wraps a plugin's error in its own, hiding the cause and the hint: say them here.
        if (isUsageError(e)) ctx.environment.stderr.write(`${formatUsageError(e)}\n`);
        throw e;
      }
      for (const p of kept) if (tenantOfPickle(p)) matrixPickles.add(p.pickle.id);
      return kept;
    });
    ctx.on('message', (e) => {
      if (e.testCase) caseToPickle.set(e.testCase.id, e.testCase.pickleId);
      if (e.testCaseStarted) startedToCase.set(e.testCaseStarted.id, e.testCaseStarted.testCaseId);
      if (e.testStepFinished?.testStepResult.status === 'FAILED') {
        const pickle = caseToPickle.get(startedToCase.get(e.testStepFinished.testCaseStartedId) ?? '');
        if (pickle && matrixPickles.has(pickle)) matrixFailed = true;
      }
    });
    return async () => {
      if (!state || matrixPickles.size === 0) return;
      const ledger = new Ledger(path.join(state.runDir, 'ledger.jsonl'));
      const scopes = [...new Set(ledger.outstanding().map((e) => e.scope))].filter((s) =>
        s.startsWith(TENANT_SCOPE_PREFIX),
      );
      if (scopes.length === 0) return;
      const keep = matrixFailed && state.config.keepOnFailure;
      const clients = createClients(state.target);
      try {
        const reports = await Promise.all(
          scopes.map((scope) =>
            flushLedger(clients, ledger, {
              scope,
              timeoutSeconds: state.config.timeouts.cleanupSeconds,
              keep,
              keepReason: 'kept after a failed tenant-matrix scenario',
            }),
          ),
        );
        // Whatever could not be deleted stays in the ledger: the coordinator tries again at the end.
        for (const f of reports.flatMap((r) => r.failed))
          ctx.logger.warn(`tenant matrix: could not delete ${f.what}: ${f.error}`);
      } finally {
        clients.destroy();
      }
    };
  },
};
