/**
 * JUnit reports as cucumber's junit formatter writes them, for the tests of the JUnit reader, the
 * shard merge and the Sonobuoy hand-over.
 */
/** A report as cucumber's junit formatter writes one. */
export function report(
  suite: string,
  cases: { name: string; status?: 'failed' | 'skipped'; feature?: string }[],
): string {
  const body = cases.map((c) => {
    const inner =
      c.status === 'failed'
        ? `\n    <failure type="AssertionError" message="expected &quot;a&quot; &amp; got &lt;b&gt;"><![CDATA[stack <with> ]]]]><![CDATA[> inside]]></failure>\n  `
        : c.status === 'skipped'
          ? '\n    <skipped/>\n  '
          : '\n    <system-out><![CDATA[Given a step...passed]]></system-out>\n  ';
    return `  <testcase classname="${c.feature ?? 'Feature A'}" name="${c.name}" time="0.5">${inner}</testcase>`;
  });
  const failures = cases.filter((c) => c.status === 'failed').length;
  const skipped = cases.filter((c) => c.status === 'skipped').length;
  return `<?xml version="1.0"?>\n<testsuite name="${suite}" time="1.5" tests="${cases.length}" skipped="${skipped}" failures="${failures}" errors="0" timestamp="2026-01-01T00:00:00.000Z">\n${body.join('\n')}\n</testsuite>`;
}
