/**
 * cucumber's HTML report, with the capability matrix in it: the report lists test-run hooks with
 * their attachments (its "Hooks" section), and cucumber 13 gives test-run hooks no way to attach,
 * so this formatter hands the builtin HTML formatter the run's messages plus one attachment, the
 * matrix the coordinator measured (from the run state), under the hook named CAPABILITIES_HOOK
 * (support/cucumber/hooks.ts registers it). Everything else is cucumber's own formatter.
 */
import { createRequire } from 'node:module';
import type { FormatterPlugin } from '@cucumber/cucumber/api';
import { AttachmentContentEncoding, type Envelope } from '@cucumber/messages';
import { formatCapabilityMatrix } from '../capabilities.ts';
import { CAPABILITIES_HOOK } from '../outcomes.ts';
import { redact } from '../redact.ts';
import { readRunState } from '../run-state.ts';

const builtinHtml = (
  createRequire(import.meta.url)('@cucumber/cucumber/lib/formatter/builtin/html') as { default: FormatterPlugin }
).default;

/** The matrix of the run, or undefined before the run state exists (a dry run). */
function matrixText(): string | undefined {
  if (!process.env.IRSA_RUN_STATE) return undefined;
  const { target } = readRunState();
  return target.capabilities ? redact(formatCapabilityMatrix(target.name, target.capabilities)) : undefined;
}

/** A transform of the message stream that adds the matrix under the first run of CAPABILITIES_HOOK. */
export function withCapabilityMatrix(matrix: () => string | undefined = matrixText): (e: Envelope) => Envelope[] {
  let hookId: string | undefined;
  let done = false;
  return (e) => {
    if (e.hook?.name === CAPABILITIES_HOOK) hookId = e.hook.id;
    const started = e.testRunHookStarted;
    if (done || !started || started.hookId !== hookId) return [e];
    done = true;
    const body = matrix();
    if (!body) return [e];
    return [
      e,
      {
        attachment: {
          body,
          contentEncoding: AttachmentContentEncoding.IDENTITY,
          mediaType: 'text/plain',
          fileName: 'capabilities.txt',
          testRunHookStartedId: started.id,
          ...(started.timestamp ? { timestamp: started.timestamp } : {}),
        },
      },
    ];
  };
}

export default {
  type: 'formatter',
  optionsKey: 'html',
  formatter(ctx) {
    const transform = withCapabilityMatrix();
    return builtinHtml.formatter({
      ...ctx,
      on: (key, handler) =>
        ctx.on(key, (e) => {
          for (const x of transform(e)) handler(x);
        }),
    });
  },
} satisfies FormatterPlugin;
