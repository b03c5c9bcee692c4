/**
 * The run's lint profile as the steps apply it: whether it is strict, and the least-privilege
 * assertion the application and policy steps share (every finding attached as the profile
 * reports it; the step fails when the profile fails the findings).
 */
import assert from 'node:assert/strict';
import type { IrsaWorld } from '../cucumber/world.ts';
import { type LintFinding, lintFails, reportedFinding, reportedSeverity } from '../policy/lint.ts';

/** The run's lint profile is strict (IRSA_LINT_PROFILE=strict, or lint.profile: strict in the setup). */
export function strictProfile(world: IrsaWorld): boolean {
  return world.state.config.lintProfile === 'strict' || world.shared.setup.spec.lint.profile === 'strict';
}

/** Attaches every finding as the run's profile reports it, and fails when the profile fails them. */
export function assertLeastPrivilege(world: IrsaWorld, what: string, findings: LintFinding[]): void {
  const strict = strictProfile(world);
  for (const f of findings)
    world.attach(reportedFinding(f, strict), { mediaType: 'text/plain', fileName: 'lint findings.txt' });
  assert.ok(
    !lintFails(findings, strict),
    `${what} is not least privilege: ${findings
      .filter((f) => reportedSeverity(f, strict) !== 'warning')
      .map((f) => f.message)
      .join('; ')}`,
  );
}
