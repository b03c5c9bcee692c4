/**
 * The sweep's AWS finder: S3 buckets (bucket tagging), IAM roles, customer-managed policies, OIDC
 * identity providers and users (their tags) carrying TAG_RUN_ID. Each kind is a row of a table
 * (how to list it, read one's tags, name it); one loop lists every kind, reads the tags a few at a
 * time and keeps what carries the mark. A listing or tag read that fails is recorded as a problem
 * (the sweep is incomplete there), never guessed around.
 */
import {
  ListOpenIDConnectProvidersCommand,
  ListOpenIDConnectProviderTagsCommand,
  ListPolicyTagsCommand,
  ListRoleTagsCommand,
  ListUserTagsCommand,
  type OpenIDConnectProviderListEntry,
  type Policy,
  paginateListPolicies,
  paginateListRoles,
  paginateListUsers,
  type Role,
  type User,
} from '@aws-sdk/client-iam';
import { type Bucket, GetBucketTaggingCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, describeAwsError } from '../aws/errors.ts';
import type { Clients } from '../clients.ts';
import type { ResourceRef } from '../ledger.ts';
import { TAG_CREATED, TAG_RUN_ID } from '../names.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import { type Candidate, type FindResult, mapLimit, optional } from './candidate.ts';

type Tags = { Key?: string | undefined; Value?: string | undefined }[] | undefined;

/** One kind of AWS resource the harness tags. */
interface AwsKind<T> {
  /** Named in a failed listing: "listing <listing>". */
  listing: string;
  list(): Promise<T[]>;
  tags(item: T): Promise<Tags>;
  ref(item: T): ResourceRef;
  /** The resource's own creation time, used when the created tag is missing; when the listing has one. */
  created?(item: T): Date | undefined;
  /** Named in a failed tag read: "reading the tags of <what>". */
  what(item: T): string;
  /** Error names of a tag read that mean "not ours to judge" (untagged, or gone since the listing). */
  notOurs: string[];
}

function tagValue(tags: Tags, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

async function collect<P, T>(pages: AsyncIterable<P>, items: (page: P) => T[] | undefined): Promise<T[]> {
  const out: T[] = [];
  for await (const page of pages) out.push(...(items(page) ?? []));
  return out;
}

function awsKinds(c: Clients, s3: S3Client): AwsKind<unknown>[] {
  const buckets: AwsKind<Bucket> = {
    listing: 'S3 buckets',
    list: async () => (await s3.send(new ListBucketsCommand({}))).Buckets ?? [],
    tags: async (b) => (await s3.send(new GetBucketTaggingCommand({ Bucket: b.Name as string }))).TagSet,
    ref: (b) => ({ kind: 's3-bucket', bucket: b.Name as string }),
    created: (b) => b.CreationDate,
    what: (b) => `bucket ${b.Name}`,
    notOurs: ['NoSuchTagSet', 'NoSuchBucket'],
  };
  const roles: AwsKind<Role> = {
    listing: 'IAM roles',
    // Service-linked roles belong to AWS services and cannot carry our tags.
    list: async () =>
      (await collect(paginateListRoles({ client: c.iam }, {}), (p) => p.Roles)).filter(
        (r) => !r.Path?.startsWith('/aws-service-role/'),
      ),
    tags: async (r) => (await c.iam.send(new ListRoleTagsCommand({ RoleName: r.RoleName }))).Tags,
    ref: (r) => ({ kind: 'iam-role', roleName: r.RoleName as string }),
    created: (r) => r.CreateDate,
    what: (r) => `role ${r.RoleName}`,
    notOurs: ['NoSuchEntity'],
  };
  const policies: AwsKind<Policy> = {
    listing: 'IAM policies',
    list: () => collect(paginateListPolicies({ client: c.iam }, { Scope: 'Local' }), (p) => p.Policies),
    tags: async (p) => (await c.iam.send(new ListPolicyTagsCommand({ PolicyArn: p.Arn }))).Tags,
    ref: (p) => ({ kind: 'iam-policy', policyArn: p.Arn as string }),
    created: (p) => p.CreateDate,
    what: (p) => `policy ${p.Arn}`,
    notOurs: ['NoSuchEntity'],
  };
  const providers: AwsKind<OpenIDConnectProviderListEntry> = {
    listing: 'IAM OIDC identity providers',
    list: async () => (await c.iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? [],
    tags: async (p) =>
      (await c.iam.send(new ListOpenIDConnectProviderTagsCommand({ OpenIDConnectProviderArn: p.Arn }))).Tags,
    ref: (p) => ({ kind: 'iam-oidc-provider', arn: p.Arn as string }),
    what: (p) => `identity provider ${p.Arn}`,
    notOurs: ['NoSuchEntity'],
  };
  const users: AwsKind<User> = {
    listing: 'IAM users',
    list: () => collect(paginateListUsers({ client: c.iam }, {}), (p) => p.Users),
    tags: async (u) => (await c.iam.send(new ListUserTagsCommand({ UserName: u.UserName }))).Tags,
    ref: (u) => ({ kind: 'iam-user', userName: u.UserName as string }),
    created: (u) => u.CreateDate,
    what: (u) => `user ${u.UserName}`,
    notOurs: ['NoSuchEntity'],
  };
  return [buckets, roles, policies, providers, users] as AwsKind<unknown>[];
}

/** Every AWS resource carrying TAG_RUN_ID, of every kind; failed listings and tag reads go to result.problems. */
export async function awsCandidates(c: Clients, target: TargetDescriptor, result: FindResult): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const problem = (where: string, e: unknown) => result.problems.push(`${where}: ${describeAwsError(e)}`);
  // Buckets of other regions answer with a redirect: follow it instead of failing the listing.
  const s3 = new S3Client({
    ...c.awsClientOptions(),
    forcePathStyle: target.aws.forcePathStyle,
    followRegionRedirects: true,
  });
  const findKind = async (kind: AwsKind<unknown>) => {
    let list: unknown[];
    try {
      list = await kind.list();
    } catch (e) {
      problem(`listing ${kind.listing}`, e);
      return;
    }
    await mapLimit(list, 8, async (item) => {
      try {
        const tags = await kind.tags(item);
        const runId = tagValue(tags, TAG_RUN_ID);
        if (runId)
          out.push({
            ref: kind.ref(item),
            runId,
            ...optional('created', tagValue(tags, TAG_CREATED)),
            ...optional('fallbackCreated', kind.created?.(item)),
          });
      } catch (e) {
        if (!kind.notOurs.includes(awsErrorName(e) ?? '')) problem(`reading the tags of ${kind.what(item)}`, e);
      }
    });
  };
  try {
    await Promise.all(awsKinds(c, s3).map(findKind));
  } finally {
    s3.destroy();
  }
  return out;
}
