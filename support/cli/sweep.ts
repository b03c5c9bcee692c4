/**
 * `npm run sweep`: finds what earlier runs left behind and deletes it.
 *   sweep [--run-id ID] [--older-than 2h] [--dry-run] [--attach STATE_FILE] [--target embedded|live]
 *
 * What counts as left behind is decided by the harness's marks only, never by names:
 *   AWS   S3 buckets (bucket tagging), IAM roles, customer-managed policies, OIDC identity
 *         providers and users (their tags) carrying TAG_RUN_ID;
 *   k8s   namespaces, cluster-scoped objects (webhook configurations, cluster roles and bindings)
 *         and a few namespaced kinds outside those namespaces carrying LABEL_RUN_ID.
 * Anything without the mark is never touched. --run-id narrows to one run; --older-than keeps
 * what is younger than the age (from TAG_CREATED, else the resource's creation time; a resource
 * whose age cannot be told is kept). Runs in progress on this machine (a run directory whose
 * process runs) are kept unless named with --run-id.
 *
 * First, on this machine (support/local-leftovers.ts): what runs killed outright left, i.e. run
 * directories and environments' work directories whose process is gone, processes still using
 * such a work directory, a warm environment's state whose processes are gone. A killed run's id is
 * then no longer in progress, and what it left on the target is swept with the rest.
 *
 * Deletion uses support/cleanup.ts (deleteWithRetries, as the ledger flush deletes), in
 * reverse dependency order: webhook configurations, namespaced objects, namespaces, roles (their
 * policies detached), users, policies, identity providers, buckets (emptied).
 *
 * The target: a live connection (IRSA_TARGET=live and its settings), or for the embedded target a
 * warm environment's state file (--attach / IRSA_ATTACH, else the one `npm run env -- up` made).
 * An embedded target started by a run dies with that run (its components with their parent):
 * what it leaves is on this machine, swept above.
 * Exit codes: 0 done (or nothing found), 1 some deletion or listing failed (the sweep is
 * incomplete: it says where), 2 bad input.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import {
  ListOpenIDConnectProvidersCommand,
  ListOpenIDConnectProviderTagsCommand,
  ListPolicyTagsCommand,
  ListRoleTagsCommand,
  ListUserTagsCommand,
  paginateListPolicies,
  paginateListRoles,
  paginateListUsers,
  type Tag,
} from '@aws-sdk/client-iam';
import { GetBucketTaggingCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import type { KubernetesObject } from '@kubernetes/client-node';
import { awsErrorName, describeAwsError } from '../aws/errors.ts';
import { deleteWithRetries, waitForNamespaceGone } from '../cleanup.ts';
import { type Clients, createClients } from '../clients.ts';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { describeRef, type ResourceRef } from '../ledger.ts';
import { findLocalLeftovers, removeLocalLeftovers } from '../local-leftovers.ts';
import { LABEL_RUN_ID, TAG_CREATED, TAG_RUN_ID } from '../names.ts';
import { checkPrivateDir, envsRoot, runsRoot, stateRoot } from '../paths.ts';
import type { SweepConnection } from '../targets/module.ts';
import { loadTargetModule } from '../targets/registry.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import { environmentAlive, readWarmState } from '../targets/warm-state.ts';
import { type CommandSpec, parseCommand } from './args.ts';

export interface SweepFilter {
  /** Only this run's resources. */
  runId?: string;
  /** Only resources created at least this long ago. */
  olderThanMs?: number;
  /** Reference time for olderThanMs (tests); default now. */
  now?: Date;
  /** Run ids to leave alone (runs in progress); ignored for the run named by runId. */
  protectedRunIds?: ReadonlySet<string>;
}

export interface Leftover {
  ref: ResourceRef;
  what: string;
  runId: string;
  /** ISO time the resource was created, when known. */
  createdAt?: string;
}

export interface FindResult {
  found: Leftover[];
  /** Marked resources left alone, with why (too young, run in progress, age unknown). */
  skipped: { what: string; why: string }[];
  /** Listings that failed (permissions, regions): the sweep is incomplete there. */
  problems: string[];
}

export interface SweepReport {
  deleted: string[];
  failed: { what: string; error: string }[];
}

/** Deletion order: what depends on something goes before it. */
const ORDER: Record<ResourceRef['kind'], number> = {
  'k8s-patch-revert': 0,
  'k8s-cluster-object': 1,
  'k8s-namespaced-object': 2,
  'k8s-namespace': 3,
  'iam-role': 4,
  'iam-user': 5,
  'iam-policy': 6,
  'iam-oidc-provider': 7,
  's3-bucket': 8,
};

/** "90s", "30m", "2h", "7d" (or a bare number of seconds) -> milliseconds. */
export function parseAge(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `--older-than ${JSON.stringify(text)} is not an age`,
      'write a number with a unit: 90s, 30m, 2h or 7d',
    );
  }
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit * 1000;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** A candidate with its mark: kept or not by the filter. */
interface Candidate {
  ref: ResourceRef;
  runId: string;
  created?: string;
  /** The resource's own creation time, when the created tag is missing. */
  fallbackCreated?: Date | string;
}

function decide(c: Candidate, filter: SweepFilter, result: FindResult): void {
  const what = describeRef(c.ref);
  if (filter.runId !== undefined && c.runId !== filter.runId) return;
  if (filter.runId === undefined && filter.protectedRunIds?.has(c.runId)) {
    result.skipped.push({
      what,
      why: `run ${c.runId} has a run directory on this machine (in progress?); name it with --run-id to delete`,
    });
    return;
  }
  const createdRaw = c.created && !Number.isNaN(Date.parse(c.created)) ? c.created : c.fallbackCreated;
  const createdAt = createdRaw === undefined ? undefined : new Date(createdRaw);
  const valid = createdAt !== undefined && !Number.isNaN(createdAt.getTime());
  if (filter.olderThanMs !== undefined) {
    if (!valid) {
      result.skipped.push({ what, why: 'its age is unknown (no created tag or creation time)' });
      return;
    }
    const age = (filter.now ?? new Date()).getTime() - createdAt.getTime();
    if (age < filter.olderThanMs) {
      result.skipped.push({ what, why: `created ${Math.round(age / 60000)} min ago` });
      return;
    }
  }
  result.found.push({ ref: c.ref, what, runId: c.runId, ...(valid ? { createdAt: createdAt.toISOString() } : {}) });
}

async function awsCandidates(c: Clients, target: TargetDescriptor, result: FindResult): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const problem = (where: string, e: unknown) => result.problems.push(`${where}: ${describeAwsError(e)}`);
  // Buckets of other regions answer with a redirect: follow it instead of failing the listing.
  const s3 = new S3Client({
    ...c.awsClientOptions(),
    forcePathStyle: target.aws.forcePathStyle,
    followRegionRedirects: true,
  });

  const buckets = async () => {
    let list: { Name?: string; CreationDate?: Date }[] = [];
    try {
      list = (await s3.send(new ListBucketsCommand({}))).Buckets ?? [];
    } catch (e) {
      problem('listing S3 buckets', e);
      return;
    }
    await mapLimit(list, 8, async (b) => {
      const bucket = b.Name as string;
      try {
        const tags = (await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet;
        const runId = tagValue(tags, TAG_RUN_ID);
        if (runId)
          out.push({
            ref: { kind: 's3-bucket', bucket },
            runId,
            ...optional('created', tagValue(tags, TAG_CREATED)),
            ...optional('fallbackCreated', b.CreationDate),
          });
      } catch (e) {
        const name = awsErrorName(e);
        // Untagged, or gone since the listing: not ours to judge.
        if (name === 'NoSuchTagSet' || name === 'NoSuchBucket') return;
        problem(`reading the tags of bucket ${bucket}`, e);
      }
    });
  };

  const roles = async () => {
    const list: { RoleName?: string; Path?: string; CreateDate?: Date }[] = [];
    try {
      for await (const page of paginateListRoles({ client: c.iam }, {})) list.push(...(page.Roles ?? []));
    } catch (e) {
      problem('listing IAM roles', e);
      return;
    }
    await mapLimit(
      // Service-linked roles belong to AWS services and cannot carry our tags.
      list.filter((r) => !r.Path?.startsWith('/aws-service-role/')),
      8,
      async (r) => {
        const RoleName = r.RoleName as string;
        try {
          const tags = (await c.iam.send(new ListRoleTagsCommand({ RoleName }))).Tags;
          const runId = tagValue(tags, TAG_RUN_ID);
          if (runId)
            out.push({
              ref: { kind: 'iam-role', roleName: RoleName },
              runId,
              ...optional('created', tagValue(tags, TAG_CREATED)),
              ...optional('fallbackCreated', r.CreateDate),
            });
        } catch (e) {
          if (awsErrorName(e) !== 'NoSuchEntity') problem(`reading the tags of role ${RoleName}`, e);
        }
      },
    );
  };

  const policies = async () => {
    const list: { Arn?: string; CreateDate?: Date }[] = [];
    try {
      for await (const page of paginateListPolicies({ client: c.iam }, { Scope: 'Local' }))
        list.push(...(page.Policies ?? []));
    } catch (e) {
      problem('listing IAM policies', e);
      return;
    }
    await mapLimit(list, 8, async (p) => {
      const PolicyArn = p.Arn as string;
      try {
        const tags = (await c.iam.send(new ListPolicyTagsCommand({ PolicyArn }))).Tags;
        const runId = tagValue(tags, TAG_RUN_ID);
        if (runId)
          out.push({
            ref: { kind: 'iam-policy', policyArn: PolicyArn },
            runId,
            ...optional('created', tagValue(tags, TAG_CREATED)),
            ...optional('fallbackCreated', p.CreateDate),
          });
      } catch (e) {
        if (awsErrorName(e) !== 'NoSuchEntity') problem(`reading the tags of policy ${PolicyArn}`, e);
      }
    });
  };

  const providers = async () => {
    let list: { Arn?: string }[] = [];
    try {
      list = (await c.iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? [];
    } catch (e) {
      problem('listing IAM OIDC identity providers', e);
      return;
    }
    await mapLimit(list, 8, async (p) => {
      const arn = p.Arn as string;
      try {
        const tags = (await c.iam.send(new ListOpenIDConnectProviderTagsCommand({ OpenIDConnectProviderArn: arn })))
          .Tags;
        const runId = tagValue(tags, TAG_RUN_ID);
        if (runId)
          out.push({
            ref: { kind: 'iam-oidc-provider', arn },
            runId,
            ...optional('created', tagValue(tags, TAG_CREATED)),
          });
      } catch (e) {
        if (awsErrorName(e) !== 'NoSuchEntity') problem(`reading the tags of identity provider ${arn}`, e);
      }
    });
  };

  const users = async () => {
    const list: { UserName?: string; CreateDate?: Date }[] = [];
    try {
      for await (const page of paginateListUsers({ client: c.iam }, {})) list.push(...(page.Users ?? []));
    } catch (e) {
      problem('listing IAM users', e);
      return;
    }
    await mapLimit(list, 8, async (u) => {
      const UserName = u.UserName as string;
      try {
        const tags = (await c.iam.send(new ListUserTagsCommand({ UserName }))).Tags;
        const runId = tagValue(tags, TAG_RUN_ID);
        if (runId)
          out.push({
            ref: { kind: 'iam-user', userName: UserName },
            runId,
            ...optional('created', tagValue(tags, TAG_CREATED)),
            ...optional('fallbackCreated', u.CreateDate),
          });
      } catch (e) {
        if (awsErrorName(e) !== 'NoSuchEntity') problem(`reading the tags of user ${UserName}`, e);
      }
    });
  };

  try {
    await Promise.all([buckets(), roles(), policies(), providers(), users()]);
  } finally {
    s3.destroy();
  }
  return out;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

interface KubeList {
  items: KubernetesObject[];
}

/** Cluster-scoped kinds the harness (or a fault of the self-test) may create. */
const CLUSTER_KINDS: {
  apiVersion: string;
  kind: string;
  list: (c: Clients, labelSelector: string) => Promise<KubeList>;
}[] = [
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    list: (c, labelSelector) => c.admission.listMutatingWebhookConfiguration({ labelSelector }),
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    list: (c, labelSelector) => c.admission.listValidatingWebhookConfiguration({ labelSelector }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    list: (c, labelSelector) => c.rbac.listClusterRoleBinding({ labelSelector }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    list: (c, labelSelector) => c.rbac.listClusterRole({ labelSelector }),
  },
];

/** Namespaced kinds looked for outside the marked namespaces (e.g. a webhook deployed into kube-system). */
const NAMESPACED_KINDS: {
  apiVersion: string;
  kind: string;
  list: (c: Clients, labelSelector: string) => Promise<KubeList>;
}[] = [
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    list: (c, s) => c.apps.listDeploymentForAllNamespaces({ labelSelector: s }),
  },
  { apiVersion: 'v1', kind: 'Pod', list: (c, s) => c.core.listPodForAllNamespaces({ labelSelector: s }) },
  { apiVersion: 'v1', kind: 'Service', list: (c, s) => c.core.listServiceForAllNamespaces({ labelSelector: s }) },
  {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    list: (c, s) => c.core.listServiceAccountForAllNamespaces({ labelSelector: s }),
  },
  { apiVersion: 'v1', kind: 'ConfigMap', list: (c, s) => c.core.listConfigMapForAllNamespaces({ labelSelector: s }) },
  { apiVersion: 'v1', kind: 'Secret', list: (c, s) => c.core.listSecretForAllNamespaces({ labelSelector: s }) },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    list: (c, s) => c.rbac.listRoleBindingForAllNamespaces({ labelSelector: s }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    list: (c, s) => c.rbac.listRoleForAllNamespaces({ labelSelector: s }),
  },
];

function describeKubeError(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  const code = (e as { code?: unknown }).code;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: string };
      if (status.message) return `${status.message}${code ? ` (HTTP ${code})` : ''}`;
    } catch {
      // not a Status object
    }
  }
  return (e as Error)?.message?.split('\n')[0] ?? String(e);
}

async function kubeCandidates(c: Clients, filter: SweepFilter, result: FindResult): Promise<Candidate[]> {
  const labelSelector = filter.runId ? `${LABEL_RUN_ID}=${filter.runId}` : LABEL_RUN_ID;
  const out: Candidate[] = [];
  const candidate = (o: KubernetesObject, ref: ResourceRef): Candidate => ({
    ref,
    runId: o.metadata?.labels?.[LABEL_RUN_ID] as string,
    ...optional('fallbackCreated', o.metadata?.creationTimestamp),
  });
  const namespaces = new Set<string>();
  try {
    for (const ns of (await c.core.listNamespace({ labelSelector })).items) {
      const name = ns.metadata?.name as string;
      namespaces.add(name);
      // Also when already terminating (a run asked for its deletion): the sweep confirms it is gone.
      out.push(candidate(ns, { kind: 'k8s-namespace', name }));
    }
  } catch (e) {
    result.problems.push(`listing namespaces: ${describeKubeError(e)}`);
  }
  await Promise.all([
    ...CLUSTER_KINDS.map(async (k) => {
      try {
        for (const o of (await k.list(c, labelSelector)).items)
          out.push(
            candidate(o, {
              kind: 'k8s-cluster-object',
              apiVersion: k.apiVersion,
              k8sKind: k.kind,
              name: o.metadata?.name as string,
            }),
          );
      } catch (e) {
        result.problems.push(`listing ${k.kind}s: ${describeKubeError(e)}`);
      }
    }),
    ...NAMESPACED_KINDS.map(async (k) => {
      try {
        for (const o of (await k.list(c, labelSelector)).items) {
          const namespace = o.metadata?.namespace as string;
          // Objects in a marked namespace go with it.
          if (namespaces.has(namespace)) continue;
          out.push(
            candidate(o, {
              kind: 'k8s-namespaced-object',
              apiVersion: k.apiVersion,
              k8sKind: k.kind,
              namespace,
              name: o.metadata?.name as string,
            }),
          );
        }
      } catch (e) {
        result.problems.push(`listing ${k.kind}s: ${describeKubeError(e)}`);
      }
    }),
  ]);
  return out;
}

/** Everything on the target that carries the harness's mark and passes the filter, in deletion order. */
export async function findLeftovers(
  c: Clients,
  target: TargetDescriptor,
  filter: SweepFilter = {},
): Promise<FindResult> {
  const result: FindResult = { found: [], skipped: [], problems: [] };
  const [aws, kube] = await Promise.all([awsCandidates(c, target, result), kubeCandidates(c, filter, result)]);
  for (const cand of [...kube, ...aws]) {
    if (!cand.runId) continue;
    decide(cand, filter, result);
  }
  result.found.sort(
    (a, b) => ORDER[a.ref.kind] - ORDER[b.ref.kind] || (b.createdAt ?? '').localeCompare(a.createdAt ?? ''),
  );
  return result;
}

/**
 * Deletes leftovers kind by kind in dependency order (findLeftovers' order), each with bounded
 * retries; resources of one kind are independent and go a few at a time.
 */
export async function deleteLeftovers(c: Clients, leftovers: Leftover[], timeoutSeconds: number): Promise<SweepReport> {
  const report: SweepReport = { deleted: [], failed: [] };
  const ranks = [...new Set(leftovers.map((l) => ORDER[l.ref.kind]))].sort((a, b) => a - b);
  for (const rank of ranks) {
    await mapLimit(
      leftovers.filter((l) => ORDER[l.ref.kind] === rank),
      4,
      async (l) => {
        try {
          await deleteWithRetries(c, l.ref, `sweep of ${l.what}`, timeoutSeconds);
          report.deleted.push(l.what);
        } catch (e) {
          report.failed.push({ what: l.what, error: describeAwsError(e) });
        }
      },
    );
  }
  // Deleting a namespace only asks for it: confirm that the namespace controller finished.
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (const l of leftovers) {
    if (l.ref.kind !== 'k8s-namespace' || !report.deleted.includes(l.what)) continue;
    const name = l.ref.name;
    try {
      await waitForNamespaceGone(c, name, Math.max(1, Math.round((deadline - Date.now()) / 1000)));
    } catch (e) {
      report.deleted.splice(report.deleted.indexOf(l.what), 1);
      report.failed.push({ what: l.what, error: (e as Error).message });
    }
  }
  return report;
}

/** Reads a warm environment's state file: the descriptor of a target this process did not start. */
export function readAttachedDescriptor(file: string): TargetDescriptor {
  if (!existsSync(file)) {
    throw new UsageError(
      `no warm environment state at ${file}`,
      'pass the state file `npm run env -- up` printed (--attach or IRSA_ATTACH)',
    );
  }
  return readWarmState(file).descriptor;
}

/**
 * The target to sweep, from the settings: an attached state file, else what the target's module
 * says sweep connects to (the machine's warm environment, the live cluster and account), or why
 * there is nothing to sweep.
 */
export async function sweepTarget(
  config: HarnessConfig,
  onProgress: (line: string) => void = () => undefined,
): Promise<SweepConnection | { nothing: string }> {
  if (config.attach) return { descriptor: readAttachedDescriptor(config.attach), close: async () => undefined };
  return (await loadTargetModule(config.target)).sweepConnection(config, onProgress);
}

interface SweepArgs {
  runId?: string;
  olderThanMs?: number;
  olderThanText?: string;
  dryRun: boolean;
  overrides: Record<string, unknown>;
}

export const SWEEP_COMMAND = {
  command: 'npm run sweep --',
  synopsis: '[--run-id ID] [--older-than AGE] [--dry-run] [--attach STATE_FILE] [--target embedded|live]',
  description: `
Finds what earlier runs left behind (resources carrying the harness's run-id tag or label, never
anything else) and deletes it, in reverse dependency order.

  --run-id ID         only this run's resources (also a run still in progress on this machine)
  --older-than AGE    only resources at least this old: 90s, 30m, 2h, 7d
  --dry-run           list what would be deleted; delete nothing
  --attach FILE       the embedded target: a warm environment's state file (default: the one
                      \`npm run env -- up\` made)
  --target NAME       embedded (a warm environment) or live (IRSA_TARGET=live and its settings)

Exit codes: 0 done or nothing found, 1 some deletions failed, 2 bad input.`,
  options: {
    'run-id': { type: 'string' },
    'older-than': { type: 'string' },
    'dry-run': { type: 'boolean' },
    attach: { type: 'string' },
    target: { type: 'string', short: 'p' },
  },
} satisfies CommandSpec<ParseArgsOptionsConfig>;

/** The parsed arguments; undefined when --help was answered. */
function parseSweepArgs(argv: string[], out: (text: string) => void): SweepArgs | undefined {
  const parsed = parseCommand(SWEEP_COMMAND, argv, out);
  if (!parsed) return undefined;
  const v = parsed.values;
  const args: SweepArgs = { dryRun: v['dry-run'] === true, overrides: {} };
  if (v['run-id'] !== undefined) {
    if (!/^[a-z0-9-]{1,40}$/.test(v['run-id']))
      throw new UsageError(
        `--run-id ${JSON.stringify(v['run-id'])} is not a run id`,
        'run ids look like ic1a2b3c (printed at the start of a run)',
      );
    args.runId = v['run-id'];
  }
  if (v['older-than'] !== undefined) {
    args.olderThanMs = parseAge(v['older-than']);
    args.olderThanText = v['older-than'];
  }
  if (v.attach !== undefined) args.overrides.attach = path.resolve(v.attach);
  if (v.target !== undefined) args.overrides.target = v.target;
  return args;
}

export interface SweepOptions {
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

export async function runSweep(argv: string[], opts: SweepOptions = {}): Promise<number> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const args = parseSweepArgs(argv, (text) => out(text.trimEnd()));
  if (!args) return 0;
  const config = loadConfig(opts.env ?? process.env, args.overrides);
  // Interrupted, it stops at once with 130/143 (exit handlers remove its temporary kubeconfig);
  // what it had not deleted yet is found by the next sweep.
  const onSignal = (signal: NodeJS.Signals) => {
    out(`sweep: ${signal}: stopped; run it again to delete what is left`);
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await sweepAll(config, args, out);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function sweepAll(config: HarnessConfig, args: SweepArgs, out: (line: string) => void): Promise<number> {
  // 1. This machine: what killed runs left (run directories, environments' work directories and
  // processes, stale warm state); a run whose process is gone is not in progress any more.
  const local = await sweepLocal(args.dryRun, out);
  // 2. The target: a warm environment, or the live cluster and account.
  const target = await sweepTarget(config, out);
  if ('nothing' in target) {
    out(target.nothing);
    return local.exitCode;
  }
  const remote = await sweepRemote(config, args, target, local.liveRunIds, out);
  return Math.max(local.exitCode, remote);
}

/** Finds (and unless dryRun removes) what dead harness processes left on this machine. */
async function sweepLocal(
  dryRun: boolean,
  out: (line: string) => void,
): Promise<{ exitCode: number; liveRunIds: Set<string> }> {
  // Read, never created here (a dry run writes nothing): trusted only as this user's 0700 directories.
  for (const dir of [stateRoot, runsRoot, envsRoot]) if (existsSync(dir)) checkPrivateDir(dir);
  const found = findLocalLeftovers({ runsRoot, envsRoot }, environmentAlive);
  for (const p of found.problems) out(`warning: ${p}`);
  for (const k of found.kept) out(`kept ${k.what}: ${k.why}`);
  if (found.found.length === 0) {
    out('nothing left on this machine by killed runs');
    return { exitCode: found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
  }
  if (dryRun) {
    for (const l of found.found) out(`would remove ${l.what}`);
    return { exitCode: found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
  }
  const { stopEnvironmentFromState } = await import('../targets/embedded/index.ts');
  const report = await removeLocalLeftovers(found.found, stopEnvironmentFromState);
  for (const r of report.removed) out(`removed ${r}`);
  for (const f of report.failed) out(`could not remove ${f.what}: ${f.error}`);
  return { exitCode: report.failed.length || found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
}

/** Sweeps the target; exit code 1 when a deletion failed or a listing did (the sweep is incomplete there). */
async function sweepRemote(
  config: HarnessConfig,
  args: SweepArgs,
  target: SweepConnection,
  liveRunIds: Set<string>,
  out: (line: string) => void,
): Promise<number> {
  const clients = createClients(target.descriptor);
  try {
    const result = await findLeftovers(clients, target.descriptor, {
      ...(args.runId ? { runId: args.runId } : {}),
      ...(args.olderThanMs !== undefined ? { olderThanMs: args.olderThanMs } : {}),
      protectedRunIds: liveRunIds,
    });
    const scope = [
      args.runId ? `run ${args.runId}` : 'any run',
      args.olderThanText ? `older than ${args.olderThanText}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    for (const p of result.problems) out(`warning: ${p}`);
    for (const s of result.skipped) out(`kept ${s.what}: ${s.why}`);
    // What could not be listed was not looked at: the sweep is incomplete, whatever else it found.
    const incomplete = result.problems.length
      ? `; incomplete: ${result.problems.length} listing(s) failed (warnings above), run it again once they can succeed`
      : '';
    const listingCode = result.problems.length ? 1 : 0;
    if (result.found.length === 0) {
      out(`nothing to sweep on the ${target.descriptor.name} target (${scope})${incomplete}`);
      return listingCode;
    }
    if (args.dryRun) {
      for (const l of result.found)
        out(`would delete ${l.what} (run ${l.runId}${l.createdAt ? `, created ${l.createdAt}` : ''})`);
      out(
        `${result.found.length} resource(s) would be deleted (${scope}); run without --dry-run to delete them${incomplete}`,
      );
      return listingCode;
    }
    const report = await deleteLeftovers(clients, result.found, config.timeouts.cleanupSeconds);
    for (const d of report.deleted) out(`deleted ${d}`);
    for (const f of report.failed) out(`could not delete ${f.what}: ${f.error}`);
    out(`swept ${report.deleted.length} resource(s), ${report.failed.length} failed (${scope})${incomplete}`);
    return report.failed.length > 0 ? 1 : listingCode;
  } finally {
    clients.destroy();
    await target.close();
  }
}
