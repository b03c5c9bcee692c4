/**
 * Per-scenario state and the only door to the reports: every attachment and log line of a
 * scenario goes through redact() here, so steps cannot leak a token by forgetting to.
 * Clients, the run state and the ledger are per worker thread and shared by its scenarios.
 * What several step files need of a scenario is a method here (the run's infrastructure, a team's
 * pod, a command in it, a namespace, a named bucket), as cucumber-js's own World has run() and
 * lastRun: step files import support/ only, never each other.
 */
import path from 'node:path';
import { type IWorldOptions, setWorldConstructor, World } from '@cucumber/cucumber';
import type { V1Pod } from '@kubernetes/client-node';
import { partitionOf } from '../aws/regions.ts';
import { type Clients, createClients } from '../clients.ts';
import { OperationTimeout } from '../errors.ts';
import { isConflict } from '../kube/errors.ts';
import { type ExecResult, execInPod, waitForReadyPod } from '../kube/ops.ts';
import { Ledger } from '../ledger.ts';
import { newScopeId } from '../names.ts';
import { createNamespace, type Tenant } from '../provision/application.ts';
import type { InfrastructureRecord, ProvisionContext } from '../provision/context.ts';
import { ensureInfrastructure } from '../provision/ensure.ts';
import { redact, redactObject, registerSecret } from '../redact.ts';
import { retry } from '../retry.ts';
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

/** The AWS CLI's message when STS refuses the pod's web identity (a new role may not have propagated yet). */
const WEB_IDENTITY_REFUSED =
  /\((InvalidIdentityToken|AccessDenied)\) when calling the AssumeRoleWithWebIdentity operation/;

class WebIdentityNotYetAccepted extends Error {}

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
  /** Namespaces this scenario created, so that a second step about the same namespace does not recreate it. */
  readonly #createdNamespaces = new Set<string>();

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

  /** The run's infrastructure (issuer, discovery documents, identity provider, webhook): set up once per run. */
  infrastructure(): Promise<InfrastructureRecord> {
    return ensureInfrastructure(this.provisionContext('run'), this.state.runDir);
  }

  /** The pod of the team: the one this scenario saw, else the first ready pod of its Deployment. */
  async podOf(label: string): Promise<V1Pod> {
    const known = this.pods.get(label);
    if (known) return known;
    const tenant = this.tenant(label);
    const pod = await waitForReadyPod(
      this.clients,
      tenant.namespace,
      `app=${tenant.deployment}`,
      this.state.config.timeouts.assertSeconds,
    );
    this.pods.set(label, pod);
    return pod;
  }

  /**
   * Runs `sh -c command` in the first container of the team's pod and keeps the outcome as
   * lastExec (the step judges it; diagnostics attach it). Where IAM is eventually consistent, a
   * refusal of the pod's web identity by STS is retried, bounded.
   */
  async runInPod(label: string, command: string): Promise<void> {
    const pod = await this.podOf(label);
    const container = pod.spec?.containers[0]?.name as string;
    const once = () =>
      execInPod(
        this.clients,
        pod.metadata?.namespace as string,
        pod.metadata?.name as string,
        container,
        ['sh', '-c', command],
        this.state.config.timeouts.assertSeconds,
      );
    let r = await once();
    if (r.exitCode !== 0 && WEB_IDENTITY_REFUSED.test(r.stderr) && this.state.target.aws.eventuallyConsistent) {
      // IAM is eventually consistent: a role or identity provider created seconds ago can be refused.
      // Retry this one failure, bounded; if it persists, the last answer is what the step judges.
      // Where IAM is not (emulators), the refusal is the answer.
      const started = Date.now();
      try {
        await retry(
          async () => {
            r = await once();
            if (r.exitCode !== 0 && WEB_IDENTITY_REFUSED.test(r.stderr)) throw new WebIdentityNotYetAccepted();
          },
          {
            operation: `\`${command}\` in the pod of team ${label}`,
            waitingFor: "STS to accept the pod's web identity (IAM propagation)",
            timeoutSeconds: this.state.config.timeouts.applySeconds,
            retryable: (e) => e instanceof WebIdentityNotYetAccepted,
            initialDelayMs: 500,
          },
        );
        this.log(
          `STS accepted the pod's web identity after ${((Date.now() - started) / 1000).toFixed(1)} s (IAM propagation)`,
        );
      } catch (e) {
        if (!(e instanceof OperationTimeout)) throw e;
        this.log(
          `STS still refused the pod's web identity after ${this.state.config.timeouts.applySeconds} s of retries`,
        );
      }
    }
    this.lastExec = { ...r, command, label };
    this.log(
      `$ ${command}\n(exit ${r.exitCode})\n${r.stdout.slice(0, 2000)}${r.stderr ? `\nstderr: ${r.stderr.slice(0, 2000)}` : ''}`,
    );
  }

  /** Creates the namespace once per scenario, whichever step asks first. */
  async ensureNamespace(namespace: string): Promise<void> {
    if (this.#createdNamespaces.has(namespace)) return;
    try {
      await createNamespace(this.provisionContext(), namespace);
    } catch (e) {
      // Created earlier in this scenario by another step (names carry the scenario's scope id).
      if (!isConflict(e)) throw e;
    }
    this.#createdNamespaces.add(namespace);
  }

  /** The real name of a bucket the scenario created under a name in the feature ("another bucket"). */
  bucket(name: string): string {
    const b = this.buckets.get(name);
    if (!b) throw new Error(`no bucket "${name}" in this scenario`);
    return b;
  }

  /** What a pod writes: the article's message plus the scenario's id, so a stale object cannot pass. */
  uploadBody(): string {
    return `This is a message from OpenShift (${this.state.runId}-${this.scopeId})`;
  }
}

setWorldConstructor(IrsaWorld);
