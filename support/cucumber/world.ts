/**
 * Per-scenario state and the only door to the reports: every attachment and log line of a
 * scenario goes through redact() here, so steps cannot leak a token by forgetting to.
 * Clients, the run state and the ledger are per worker thread and shared by its scenarios.
 */
import path from 'node:path';
import { type IWorldOptions, setWorldConstructor, World } from '@cucumber/cucumber';
import type { V1Pod } from '@kubernetes/client-node';
import { partitionOf } from '../aws/regions.ts';
import { type Clients, createClients } from '../clients.ts';
import type { ExecResult } from '../kube/ops.ts';
import { Ledger } from '../ledger.ts';
import { newScopeId } from '../names.ts';
import type { Tenant } from '../provision/application.ts';
import type { ProvisionContext } from '../provision/context.ts';
import { redact, redactObject, registerSecret } from '../redact.ts';
import { type RunState, readRunState } from '../run-state.ts';
import { type LoadedSetup, loadSetup } from '../setup/setup.ts';

interface WorkerShared {
  state: RunState;
  clients: Clients;
  ledger: Ledger;
  setup: LoadedSetup;
}
let shared: WorkerShared | undefined;

export function workerShared(): WorkerShared {
  if (!shared) {
    const state = readRunState();
    // Worker threads have their own redaction registry: teach it the admin credentials too.
    for (const secret of [state.target.aws.credentials?.secretAccessKey, state.target.aws.credentials?.sessionToken])
      if (secret) registerSecret(secret);
    shared = {
      state,
      clients: createClients(state.target),
      ledger: new Ledger(path.join(state.runDir, 'ledger.jsonl')),
      setup: loadSetup(state.config.setupDir),
    };
  }
  return shared;
}

export function releaseWorkerShared(): void {
  shared?.clients.destroy();
  shared = undefined;
}

export class IrsaWorld extends World {
  /** Ledger scope of this scenario: its resources are deleted after it. */
  readonly scopeId = newScopeId();
  tenants = new Map<string, Tenant>();
  /** The pod the last "pod of team X" step resolved, by team label. */
  pods = new Map<string, V1Pod>();
  /** The last command run in a pod: what ran, in whose pod (team label), and its outcome. */
  lastExec?: ExecResult & { command: string; label: string };
  /** The last upload a pod attempted, to explain an unexpected success. */
  lastUpload?: { label: string; bucket: string; key: string };
  /** Web-identity tokens read from pods, by team label: registered as secrets, never attached. */
  tokens = new Map<string, string>();
  /** Extra buckets created by the scenario (e.g. "another bucket"), by name in the feature. */
  buckets = new Map<string, string>();
  notes: string[] = [];
  /** When the scenario started: its diagnostics select log lines from then on. */
  readonly startedAt = new Date();
  /** Set once a failed step's diagnostics are attached to it, so the After hook does not repeat them. */
  diagnosed = false;

  constructor(options: IWorldOptions) {
    super(options);
    const attach = this.attach.bind(this);
    // The structural redaction: strings and JSON pass through redact(); binary data is refused.
    // Every attachment has a file name that says what it is: the HTML report titles it so.
    (this as { attach: unknown }).attach = ((data: unknown, options?: unknown) => {
      if (typeof data !== 'string') throw new Error('attachments must be text (binary data cannot be redacted)');
      const o = (typeof options === 'object' && options !== null ? options : {}) as {
        mediaType?: string;
        fileName?: string;
      };
      if (!o.fileName)
        throw new Error('an attachment needs a file name that says what it is: attach(body, { mediaType, fileName })');
      return attach(redact(data), { mediaType: o.mediaType ?? 'text/plain', fileName: redact(o.fileName) });
    }) as typeof this.attach;
    const logFn = this.log.bind(this);
    (this as { log: unknown }).log = ((text: string) => logFn(redact(text))) as typeof this.log;
  }

  get shared(): WorkerShared {
    return workerShared();
  }

  get state(): RunState {
    return this.shared.state;
  }

  get clients(): Clients {
    return this.shared.clients;
  }

  /** The partition of the target's region (aws, aws-cn, aws-us-gov): every ARN a step builds uses it. */
  get partition(): string {
    return partitionOf(this.state.target.aws.region);
  }

  provisionContext(scope: string = this.scopeId): ProvisionContext {
    const s = this.shared;
    return {
      clients: s.clients,
      target: s.state.target,
      setup: s.setup,
      config: s.state.config,
      runId: s.state.runId,
      ledger: s.ledger,
      scope,
      log: (line) => this.log(line),
    };
  }

  attachJson(title: string, value: unknown): void {
    this.attach(JSON.stringify({ [title]: redactObject(value) }, null, 2), {
      mediaType: 'application/json',
      fileName: `${title}.json`,
    });
  }

  tenant(label: string): Tenant {
    const t = this.tenants.get(label);
    if (!t)
      throw new Error(`no team "${label}" in this scenario; known: ${[...this.tenants.keys()].join(', ') || 'none'}`);
    return t;
  }
}

setWorldConstructor(IrsaWorld);
