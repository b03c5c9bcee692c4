/**
 * cucumber's JUnit report (@cucumber/junit-xml-formatter), with the reason of every skipped test
 * case: a scenario is skipped by a hook or a step returning 'skipped' after attaching
 * "Skipped: <reason>" (support/cucumber/hooks.ts), and cucumber 13 carries no message for it. This
 * formatter puts the reason into the skipped step's result, which the JUnit formatter writes into
 * <skipped>, and gives <skipped> the message attribute CI servers (Jenkins, GitLab) show.
 */
import type { FormatterPlugin } from '@cucumber/cucumber/api';
import junitFormatter from '@cucumber/junit-xml-formatter';
import { type Envelope, TestStepResultStatus } from '@cucumber/messages';
import { SKIP_PREFIX } from '../outcomes.ts';

const junit = junitFormatter as unknown as FormatterPlugin;

/**
 * A transform of the message stream: once a hook or step of a test case says why it skips, every
 * skipped step of it from then on carries that reason (the JUnit formatter reports one of them).
 */
export function withSkipReasons(): (e: Envelope) => Envelope {
  const reasons = new Map<string, string>();
  return (e) => {
    const a = e.attachment;
    if (a?.testCaseStartedId && a.body.startsWith(SKIP_PREFIX) && !reasons.has(a.testCaseStartedId))
      reasons.set(a.testCaseStartedId, a.body.slice(SKIP_PREFIX.length));
    const f = e.testStepFinished;
    const reason = f && reasons.get(f.testCaseStartedId);
    if (!f || !reason || f.testStepResult.status !== TestStepResultStatus.SKIPPED || f.testStepResult.message) return e;
    return { testStepFinished: { ...f, testStepResult: { ...f.testStepResult, message: reason } } };
  };
}

const xmlAttribute = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/\n/g, ' ');

/** <skipped> with its reason as CDATA (the formatter's) gets the reason as message attribute too. */
export function skippedWithMessages(xml: string): string {
  return xml.replace(/<skipped>(\s*)<!\[CDATA\[([\s\S]*?)\]\]>/g, (_m, space: string, reason: string) => {
    return `<skipped message="${xmlAttribute(reason)}">${space}<![CDATA[${reason}]]>`;
  });
}

export default {
  type: 'formatter',
  optionsKey: 'junit',
  formatter(ctx) {
    const transform = withSkipReasons();
    return junit.formatter({
      ...ctx,
      on: (key, handler) => ctx.on(key, (e) => handler(transform(e))),
      write: (chunk) => ctx.write(typeof chunk === 'string' ? skippedWithMessages(chunk) : chunk),
    });
  },
} satisfies FormatterPlugin;
