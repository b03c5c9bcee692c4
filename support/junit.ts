/**
 * JUnit XML as the harness writes it (cucumber's junit formatter: one <testsuite>, one <testcase>
 * per scenario) and as CI systems read it: reading (a small XML reader, enough for JUnit: elements,
 * attributes, text, CDATA, comments), merging the reports of a sharded run (`--shard i/n`) into one
 * <testsuites> file, and writing the one-test-case report of a run that could not start.
 *
 * A merge checks what a CI matrix gets wrong: a shard missing or given twice (the suites of a
 * sharded run are named "irsa-conformance shard i/n"), and a test case in two reports.
 */
import { SUITE_NAME, shardOfSuiteName } from './shards.ts';

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
  /** The element's source text, start tag to end tag. */
  raw: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(Number.parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(Number.parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

export function escapeXml(s: string): string {
  return (
    s
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      // Characters XML 1.0 cannot carry at all.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '')
  );
}

/** The root element of an XML document. Throws on what is not well-formed in the ways that matter here. */
export function parseXml(xml: string): XmlElement {
  const stack: { el: XmlElement; start: number }[] = [];
  let root: XmlElement | undefined;
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`not well-formed XML at offset ${i}: ${what}`);
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const top = stack[stack.length - 1];
    if (lt < 0) {
      if (xml.slice(i).trim() && !top) fail('text outside the root element');
      break;
    }
    if (lt > i && top) top.el.text += decode(xml.slice(i, lt));
    i = lt;
    if (xml.startsWith('<?', i)) {
      const end = xml.indexOf('?>', i);
      if (end < 0) fail('unterminated <?');
      i = end + 2;
    } else if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i);
      if (end < 0) fail('unterminated comment');
      i = end + 3;
    } else if (xml.startsWith('<![CDATA[', i)) {
      const end = xml.indexOf(']]>', i);
      if (end < 0) fail('unterminated CDATA');
      if (top) top.el.text += xml.slice(i + 9, end);
      i = end + 3;
    } else if (xml.startsWith('<!', i)) {
      const end = xml.indexOf('>', i);
      i = end + 1;
    } else if (xml.startsWith('</', i)) {
      const end = xml.indexOf('>', i);
      const name = xml.slice(i + 2, end).trim();
      const open = stack.pop();
      if (!open || open.el.name !== name) fail(`</${name}> closes ${open ? `<${open.el.name}>` : 'nothing'}`);
      i = end + 1;
      (open as { el: XmlElement; start: number }).el.raw = xml.slice((open as { start: number }).start, i);
    } else {
      const m = /^<([A-Za-z_][\w.:-]*)/.exec(xml.slice(i, i + 256));
      if (!m) fail('a tag without a name');
      const el: XmlElement = { name: (m as RegExpExecArray)[1] as string, attrs: {}, children: [], text: '', raw: '' };
      const start = i;
      i += (m as RegExpExecArray)[0].length;
      const attr = /\s*([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')|\s*(\/?>)/y;
      let closed = false;
      let selfClosing = false;
      while (!closed) {
        attr.lastIndex = i;
        const a = attr.exec(xml);
        if (!a) fail(`a malformed attribute in <${el.name}>`);
        const am = a as RegExpExecArray;
        i = attr.lastIndex;
        if (am[5]) {
          closed = true;
          selfClosing = am[5] === '/>';
        } else el.attrs[am[1] as string] = decode(am[3] ?? am[4] ?? '');
      }
      if (top) top.el.children.push(el);
      else if (root) fail('a second root element');
      else root = el;
      if (selfClosing) el.raw = xml.slice(start, i);
      else stack.push({ el, start });
    }
  }
  if (stack.length) fail(`<${stack[stack.length - 1]?.el.name}> is never closed`);
  if (!root) fail('no root element');
  return root as XmlElement;
}

export interface JUnitCase {
  classname: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  message?: string;
  time: number;
}

export interface JUnitSuite {
  name: string;
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  time: number;
  cases: JUnitCase[];
  raw: string;
}

function num(s: string | undefined): number {
  const n = Number(s ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** The test suites of a JUnit document (<testsuite> or <testsuites>). */
export function readJUnit(xml: string): JUnitSuite[] {
  const root = parseXml(xml);
  const suites = root.name === 'testsuites' ? root.children.filter((c) => c.name === 'testsuite') : [root];
  if (root.name !== 'testsuites' && root.name !== 'testsuite')
    throw new Error(`the root element is <${root.name}>, not <testsuite> or <testsuites>`);
  return suites.map((s) => {
    const cases = s.children
      .filter((c) => c.name === 'testcase')
      .map((c): JUnitCase => {
        const failure = c.children.find((x) => x.name === 'failure' || x.name === 'error');
        const skipped = c.children.some((x) => x.name === 'skipped');
        const message = failure?.attrs.message ?? (failure?.text.trim() || undefined);
        return {
          classname: c.attrs.classname ?? '',
          name: c.attrs.name ?? '',
          status: failure ? 'failed' : skipped ? 'skipped' : 'passed',
          ...(message ? { message } : {}),
          time: num(c.attrs.time),
        };
      });
    return {
      name: s.attrs.name ?? '',
      tests: num(s.attrs.tests ?? String(cases.length)),
      failures: num(s.attrs.failures),
      errors: num(s.attrs.errors),
      skipped: num(s.attrs.skipped),
      time: num(s.attrs.time),
      cases,
      raw: s.raw,
    };
  });
}

export interface MergeResult {
  xml: string;
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  suites: string[];
  /** What makes the merge unusable: a shard missing or twice, a test case in two reports. */
  problems: string[];
}

/** One <testsuites> document from several JUnit reports, with the checks a sharded run needs. */
export function mergeJUnit(inputs: { source: string; xml: string }[], name = SUITE_NAME): MergeResult {
  const problems: string[] = [];
  const suites: (JUnitSuite & { source: string })[] = [];
  for (const input of inputs) {
    try {
      for (const s of readJUnit(input.xml)) suites.push({ ...s, source: input.source });
    } catch (e) {
      problems.push(`${input.source}: ${(e as Error).message}`);
    }
  }
  const shards = suites.map((s) => ({ s, shard: shardOfSuiteName(s.name) }));
  const sharded = shards.filter((x) => x.shard);
  if (sharded.length > 0) {
    const totals = new Set(sharded.map((x) => x.shard?.total));
    if (sharded.length !== suites.length)
      problems.push(
        `${suites.length - sharded.length} report(s) of an unsharded run mixed with shards: ${shards
          .filter((x) => !x.shard)
          .map((x) => x.s.source)
          .join(', ')}`,
      );
    if (totals.size > 1) problems.push(`shards of different totals: ${[...totals].map((t) => `/${t}`).join(', ')}`);
    const total = Math.max(...sharded.map((x) => x.shard?.total ?? 0));
    for (let i = 1; i <= total; i++) {
      const found = sharded.filter((x) => x.shard?.index === i);
      if (found.length === 0) problems.push(`shard ${i}/${total} is missing`);
      if (found.length > 1)
        problems.push(
          `shard ${i}/${total} is there ${found.length} times (${found.map((x) => x.s.source).join(', ')})`,
        );
    }
  }
  const seen = new Map<string, string>();
  for (const s of suites)
    for (const c of s.cases) {
      const key = `${c.classname}\u0000${c.name}`;
      const where = seen.get(key);
      if (where !== undefined && where !== s.source)
        problems.push(`test case "${c.name}" is in ${where} and ${s.source}`);
      else if (where !== undefined) problems.push(`test case "${c.name}" is twice in ${s.source}`);
      seen.set(key, s.source);
    }
  const sum = (k: 'tests' | 'failures' | 'errors' | 'skipped' | 'time') => suites.reduce((a, s) => a + s[k], 0);
  const totals = {
    tests: sum('tests'),
    failures: sum('failures'),
    errors: sum('errors'),
    skipped: sum('skipped'),
    time: sum('time'),
  };
  const xml = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${escapeXml(name)}" tests="${totals.tests}" failures="${totals.failures}" errors="${totals.errors}" skipped="${totals.skipped}" time="${totals.time.toFixed(3)}">`,
    ...suites.map((s) => s.raw),
    '</testsuites>',
    '',
  ].join('\n');
  return { xml, ...totals, suites: suites.map((s) => s.name), problems };
}

/** A report with one failed test case: a run that could not start still tells a CI or Sonobuoy why. */
export function failedRunJUnit(suiteName: string, testName: string, message: string, detail = message): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuite name="${escapeXml(suiteName)}" tests="1" failures="1" errors="0" skipped="0" time="0">`,
    `  <testcase classname="${escapeXml(suiteName)}" name="${escapeXml(testName)}" time="0">`,
    `    <failure type="RunError" message="${escapeXml(message)}"><![CDATA[${detail.replaceAll(']]>', ']]]]><![CDATA[>')}]]></failure>`,
    '  </testcase>',
    '</testsuite>',
    '',
  ].join('\n');
}
