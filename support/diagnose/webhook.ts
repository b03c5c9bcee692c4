/**
 * Pre-flight of a MutatingWebhookConfiguration for the pod identity webhook (irsa-facts §2, §5):
 * failurePolicy Ignore hides outages (warning); listing admission review v1 first for a webhook
 * release that answers without apiVersion/kind (up to v0.6.17) makes every answer rejected, and
 * with Ignore pods are admitted unmutated, silently (error); no objectSelector/namespaceSelector
 * escape hatch is only noted.
 */
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';

export interface WebhookFinding {
  severity: 'error' | 'warning' | 'info';
  message: string;
}

/** v0.6.17 and older answer AdmissionReview without apiVersion/kind (fixed after, PR #310). */
export function answersOnlyV1beta1(version: string | undefined): boolean | undefined {
  if (!version) return undefined;
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  const [maj, min, pat] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return maj === 0 && (min < 6 || (min === 6 && pat <= 17));
}

export function preflightWebhookConfiguration(
  cfg: V1MutatingWebhookConfiguration,
  opts: { webhookVersion?: string },
): WebhookFinding[] {
  const findings: WebhookFinding[] = [];
  const name = cfg.metadata?.name;
  for (const w of cfg.webhooks ?? []) {
    const where = `${name}/${w.name}`;
    const versions = w.admissionReviewVersions ?? [];
    const legacy = answersOnlyV1beta1(opts.webhookVersion);
    if (versions[0] === 'v1' && legacy !== false) {
      findings.push({
        severity: legacy ? 'error' : 'warning',
        message: `${where} lists admissionReviewVersions ${JSON.stringify(versions)}: kube-apiserver sends v1, and the webhook ${opts.webhookVersion ?? '(version unknown)'} ${legacy ? 'answers' : 'may answer'} without apiVersion/kind, so its answers are rejected${w.failurePolicy === 'Ignore' ? ' and, with failurePolicy Ignore, pods are admitted unmutated without any error' : ''}; list [v1beta1] (as upstream deploy/ and OpenShift do)`,
      });
    }
    if (!versions.includes('v1beta1') && !versions.includes('v1')) {
      findings.push({
        severity: 'error',
        message: `${where} lists no admission review version the webhook answers (${JSON.stringify(versions)})`,
      });
    }
    if ((w.failurePolicy ?? 'Fail') === 'Ignore') {
      findings.push({
        severity: 'warning',
        message: `${where} has failurePolicy Ignore: when the webhook is down or its certificate is wrong, pods are created without IAM credentials and nothing reports it`,
      });
    }
    if (!w.clientConfig?.caBundle && w.clientConfig?.url) {
      findings.push({
        severity: 'warning',
        message: `${where} has no caBundle: kube-apiserver verifies ${w.clientConfig.url} against its system roots only`,
      });
    }
  }
  if ((cfg.webhooks ?? []).length === 0) findings.push({ severity: 'error', message: `${name} has no webhooks` });
  return findings;
}
