/**
 * The verify-only report: one page a platform engineer can attach to an upgrade ticket. Pass or
 * fail per check (one scenario = one check, with the first line of its failure), what was checked,
 * the detected dialect with the source of each value, and the capability matrix. Markdown, written
 * as reports/verify-summary.md; everything passes through redact().
 *
 * Also: which scenarios a live run selects in each mode (tagsForLiveMode).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HarnessConfig } from '../../config.ts';
import { redact } from '../../redact.ts';
import { CAPABILITIES, type TargetDescriptor } from '../target.ts';

export interface CheckResult {
  name: string;
  uri: string;
  status: string;
  message?: string;
}

const DEFAULT_EXCLUSION = 'not @verify-only';

/**
 * Verify-only runs the infrastructure checks and the verify-only feature; provision runs
 * everything else. Combined with the tags already selected (profile and --tags).
 */
export function tagsForLiveMode(mode: 'provision' | 'verify-only', selected: string | undefined): string {
  const own = mode === 'verify-only' ? '(@infrastructure or @verify-only)' : 'not @verify-only';
  // The embedded/docker profiles' default exclusion (cucumber.js) comes first when a run selects the
  // live target through IRSA_TARGET with another profile: it is the mode's decision here, so drop it.
  let rest = (selected ?? '').trim();
  for (const dflt of [`(${DEFAULT_EXCLUSION})`, DEFAULT_EXCLUSION]) {
    if (rest === dflt) rest = '';
    else if (rest.startsWith(`${dflt} and `)) rest = rest.slice(dflt.length + ' and '.length);
  }
  return rest ? `(${rest}) and ${own}` : own;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();

function firstLine(message: string | undefined): string {
  if (!message) return '';
  const line = message.split('\n').find((l) => l.trim() && !/^\s*at /.test(l)) ?? '';
  // Redacted before it is cut, so a cut never leaves half a secret.
  const text = redact(line).replace(/^(AssertionError|Error)( \[[A-Z_]+\])?: /, '');
  return text.length > 220 ? `${text.slice(0, 217)}...` : text;
}

function area(uri: string): string {
  const base = path.basename(uri, '.feature').replace(/^\d+-/, '');
  return base === 'verify-only' ? 'service account path' : base;
}

export function verifySummaryMarkdown(input: {
  runId: string;
  finishedAt: Date;
  descriptor: TargetDescriptor;
  config: HarnessConfig;
  checks: CheckResult[];
}): string {
  const { descriptor: t, config, checks } = input;
  const failed = checks.filter((c) => c.status === 'FAILED' || !['PASSED', 'SKIPPED'].includes(c.status));
  const passed = checks.filter((c) => c.status === 'PASSED');
  const skipped = checks.filter((c) => c.status === 'SKIPPED');
  const verdict =
    passed.length + failed.length === 0
      ? `NO CHECKS RAN (${skipped.length} skipped)`
      : failed.length === 0
        ? 'PASS'
        : `FAIL (${failed.length} of ${checks.length} checks failed)`;
  const live = config.live;
  const server = t.detected?.find((d) => d.name === 'API server')?.value ?? t.kubeconfigPath;
  const lines: string[] = [
    '# IRSA verify-only summary',
    '',
    `**Result: ${verdict}** — ${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped.`,
    '',
    `- Run ${input.runId}, ${input.finishedAt.toISOString()}`,
    `- Cluster ${server}; AWS account ${t.aws.accountId}, region ${t.aws.region}${t.aws.endpoint ? `, endpoint ${t.aws.endpoint}` : ''}`,
    `- Checked: ServiceAccount ${live.namespace}/${live.serviceAccount}, role ${live.roleArn}, allowed bucket ${live.allowedBucket}, denied bucket ${live.deniedBucket}`,
    `- Changes made: none in AWS; ${live.noPod ? 'no pod (IRSA_VERIFY_NO_POD)' : `at most one short-lived pod in ${live.namespace}, deleted after its check`}`,
    '',
    '## Checks',
    '',
    '| # | Check | Area | Result | Detail |',
    '|---|---|---|---|---|',
    ...checks.map((c, i) => {
      const result =
        c.status === 'PASSED'
          ? 'pass'
          : c.status === 'SKIPPED'
            ? 'skipped'
            : `**${c.status === 'FAILED' ? 'FAIL' : c.status}**`;
      const detail =
        c.status === 'SKIPPED' && !c.message
          ? live.noPod
            ? 'IRSA_VERIFY_NO_POD, or a capability is missing (matrix below)'
            : 'a capability is missing (matrix below)'
          : firstLine(c.message);
      return `| ${i + 1} | ${cell(c.name)} | ${area(c.uri)} | ${result} | ${cell(detail)} |`;
    }),
    '',
    '## Detected dialect',
    '',
    '| Value | Found | Source |',
    '|---|---|---|',
    ...(t.detected ?? []).map((d) => `| ${cell(d.name)} | ${cell(d.value)} | ${cell(d.source)} |`),
    '',
    '## Capability matrix',
    '',
    '| Capability | Available | How measured |',
    '|---|---|---|',
    ...CAPABILITIES.map((cap) => {
      const r = t.capabilities?.[cap];
      return `| ${cap} | ${r ? (r.available ? 'yes' : 'no') : '?'} | ${cell(r?.reason ?? 'not probed')} |`;
    }),
    '',
  ];
  return redact(lines.join('\n'));
}

export function writeVerifySummary(input: Parameters<typeof verifySummaryMarkdown>[0]): string {
  const file = path.join(input.config.reportsDir, 'verify-summary.md');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, verifySummaryMarkdown(input));
  return file;
}
