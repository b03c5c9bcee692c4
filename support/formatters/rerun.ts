/**
 * The rerun file (reports/@rerun.txt): the scenarios that failed, as `uri:line` per feature, for
 * `npm run conformance -- reports/@rerun.txt`. cucumber reads an argument as a rerun file only when
 * its base name starts with `@`, hence the name. Unlike cucumber's own rerun formatter it leaves
 * out skipped scenarios (a capability the target lacks would only skip them again), so a rerun runs
 * exactly the failed ones; after a run without failures the file is empty, and running it is
 * refused as a selection of nothing (exit 2).
 */
import type { FormatterPlugin } from '@cucumber/cucumber/api';
import { OutcomeCollector, rerunText } from '../outcomes.ts';

export default {
  type: 'formatter',
  formatter({ on, write }) {
    const collector = new OutcomeCollector();
    on('message', (e) => {
      collector.add(e);
      if (e.testRunFinished) write(rerunText(collector.finished));
    });
  },
} satisfies FormatterPlugin;
