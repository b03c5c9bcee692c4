/**
 * A setup description checked in full before anything starts (issue 16, item 5): every template
 * it names is found in its layers, rendered with the placeholders the harness gives that
 * template (sample values), parsed (JSON or YAML, and the Kubernetes kind it must be), and every
 * IAM policy among them is checked for grammar (@cloud-copilot/iam-policy, from the author of the
 * simulator the harness uses) as the kind of policy it is. The first problem is a UsageError (exit
 * 2) naming the setting, the file and what is wrong; what the run itself renders later cannot fail
 * on anything checked here.
 *
 * The placeholders are the ones support/provision/ passes (fixtures/setups/default/setup.yaml
 * lists them too); test/unit/setup-check.test.ts renders through the provisioning code with every one
 * of them, so the two cannot drift apart.
 */
import {
  type ValidationError,
  validateIdentityPolicy,
  validateResourcePolicy,
  validateTrustPolicy,
} from '@cloud-copilot/iam-policy';
import { UsageError } from '../errors.ts';
import { isNone, type LoadedSetup, renderJson, renderYaml, type SetupSpec, substitute, templatePath } from './setup.ts';

/** One value for every placeholder a template may use. */
export const SAMPLE_VALUES = {
  issuer: 'https://127.0.0.1:4443/irsa-oidc-envcheck',
  bucket: 'irsa-oidc-envcheck',
  name: 'irsa-check',
  runId: 'iccheck0',
  webhookClientConfig: JSON.stringify({ url: 'https://127.0.0.1:4444/mutate', caBundle: 'Y2E=' }),
  appBucket: 'ocp-iam-role-app-iccheck0',
  identityProviderArn: 'arn:aws:iam::123456789012:oidc-provider/127.0.0.1:4443/irsa-oidc-envcheck',
  issuerHostPath: '127.0.0.1:4443/irsa-oidc-envcheck',
  namespace: 'irsa-check',
  serviceAccount: 's3-manager',
  audience: 'sts.amazonaws.com',
  roleArn: 'arn:aws:iam::123456789012:role/irsa-check',
  annotationPrefix: 'eks.amazonaws.com',
  image: 'amazon/aws-cli:2.27.50',
  partition: 'aws',
} as const;

type Placeholder = keyof typeof SAMPLE_VALUES;

interface TemplateSpec {
  /** The setting in setup.yaml that names the file. */
  setting: string;
  file: (s: SetupSpec) => string;
  placeholders: Placeholder[];
  format: 'json' | 'yaml';
  /** A policy: checked for grammar as this kind. */
  policy?: 'identity' | 'trust' | 'resource';
  /** A Kubernetes object of this kind. */
  kind?: string;
  /** "none" switches it off. */
  optional?: boolean;
}

/** Every template of a setup, with the placeholders the provisioning code gives it. */
export const TEMPLATES: TemplateSpec[] = [
  { setting: 'discovery.document', file: (s) => s.discovery.document, placeholders: ['issuer'], format: 'json' },
  {
    setting: 'discovery.bucketPolicy',
    file: (s) => s.discovery.bucketPolicy,
    placeholders: ['bucket', 'partition'],
    format: 'json',
    policy: 'resource',
    optional: true,
  },
  {
    setting: 'webhook.configuration',
    file: (s) => s.webhook.configuration,
    placeholders: ['name', 'runId', 'webhookClientConfig'],
    format: 'yaml',
    kind: 'MutatingWebhookConfiguration',
    optional: true,
  },
  {
    setting: 'application.permissionPolicy',
    file: (s) => s.application.permissionPolicy,
    placeholders: ['appBucket', 'partition'],
    format: 'json',
    policy: 'identity',
  },
  {
    setting: 'application.trustPolicy',
    file: (s) => s.application.trustPolicy,
    placeholders: ['identityProviderArn', 'issuerHostPath', 'namespace', 'serviceAccount', 'audience', 'partition'],
    format: 'json',
    policy: 'trust',
  },
  {
    setting: 'application.serviceAccount',
    file: (s) => s.application.serviceAccount,
    placeholders: ['namespace', 'name', 'roleArn', 'annotationPrefix', 'runId'],
    format: 'yaml',
    kind: 'ServiceAccount',
  },
  {
    setting: 'application.deployment',
    file: (s) => s.application.deployment,
    placeholders: ['namespace', 'name', 'serviceAccount', 'image', 'runId'],
    format: 'yaml',
    kind: 'Deployment',
  },
];

const VALIDATORS: Record<NonNullable<TemplateSpec['policy']>, (p: unknown) => ValidationError[]> = {
  identity: validateIdentityPolicy,
  trust: validateTrustPolicy,
  resource: validateResourcePolicy,
};

/** Checks every template of `setup`; throws the first problem as a UsageError (exit 2). */
export function checkSetup(setup: LoadedSetup): void {
  const hint =
    'fix the setup description; fixtures/setups/default shows each file and setup.yaml lists the placeholders';
  const where = (t: TemplateSpec) => `setup ${setup.dir}: ${t.setting}`;
  for (const t of TEMPLATES) {
    const file = t.file(setup.spec);
    if (t.optional && isNone(file)) continue;
    const vars = Object.fromEntries(t.placeholders.map((p) => [p, SAMPLE_VALUES[p]]));
    let doc: unknown;
    try {
      templatePath(setup, file);
      doc = t.format === 'json' ? renderJson(setup, file, vars) : renderYaml(setup, file, vars);
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${where(t)}: ${e.message.split('\n')[0]}`, e.hint);
      throw e;
    }
    const path = templatePath(setup, file);
    if (t.kind) {
      const kind = (doc as { kind?: unknown } | null)?.kind;
      if (kind !== t.kind)
        throw new UsageError(`${where(t)}: ${path} is not a ${t.kind} (kind: ${JSON.stringify(kind ?? null)})`, hint);
    }
    if (t.policy) {
      const [problem, ...more] = VALIDATORS[t.policy](doc);
      if (problem)
        throw new UsageError(
          `${where(t)}: ${path} is not a valid IAM ${t.policy} policy: ${problem.path}: ${problem.message}${more.length ? ` (and ${more.length} more)` : ''}`,
          hint,
        );
    }
  }
  let url: string;
  try {
    url = substitute(setup.spec.identityProvider.url, { issuer: SAMPLE_VALUES.issuer }, 'identityProvider.url');
  } catch (e) {
    throw new UsageError(`setup ${setup.dir}: ${(e as Error).message.split('\n')[0]}`, hint);
  }
  if (!/^https:\/\/[^/\s]+/.test(url))
    throw new UsageError(
      `setup ${setup.dir}: identityProvider.url ${JSON.stringify(setup.spec.identityProvider.url)} is not an https URL`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a placeholder of setup.yaml, printed as it is written there
      'IAM identity providers are https URLs; the default is ${issuer}',
    );
}
