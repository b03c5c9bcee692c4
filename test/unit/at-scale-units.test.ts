/**
 * Unit tests of the pieces of issue 19 that need no cluster: JUnit reading and the merge of a
 * sharded run's reports (support/junit.ts), the --shard check (support/shards.ts), the in-cluster
 * configuration (support/kube/in-cluster.ts and the live target's kubeconfig resolution), and the
 * entrypoint's Sonobuoy hand-over (support/cli/entrypoint.ts): the done file, the tarball, the
 * report of a run that could not start (the tarball read back by GNU tar:
 * test/integration/sonobuoy-handover.test.ts).
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { handOverToSonobuoy, SONOBUOY_TARBALL, usageFailure } from '../../support/cli/entrypoint.ts';
import { isUsageError } from '../../support/errors.ts';
import { tarChunks } from '../../support/image/tar.ts';
import { failedRunJUnit, mergeJUnit, parseXml, readJUnit } from '../../support/junit.ts';
import { detectInCluster, writeInClusterKubeconfig } from '../../support/kube/in-cluster.ts';
import { requireShard, shardOfSuiteName, shardSuiteName } from '../../support/shards.ts';
import { resolveNodeImages } from '../../support/targets/embedded/real-node.ts';
import { resolveKubeconfig } from '../../support/targets/live/index.ts';
import { report } from '../support/junit-report.ts';

const work = mkdtempSync(path.join(tmpdir(), 'irsa-at-scale-units-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('JUnit reports', () => {
  it('reads a cucumber report: cases, statuses, failure messages with entities and CDATA', () => {
    const [suite] = readJUnit(
      report('irsa-conformance', [
        { name: 'one' },
        { name: 'two', status: 'failed' },
        { name: 'three', status: 'skipped' },
      ]),
    );
    assert.equal(suite?.name, 'irsa-conformance');
    assert.deepEqual(
      suite?.cases.map((c) => [c.name, c.status]),
      [
        ['one', 'passed'],
        ['two', 'failed'],
        ['three', 'skipped'],
      ],
    );
    assert.equal(suite?.cases[1]?.message, 'expected "a" & got <b>');
    assert.equal(suite?.failures, 1);
    const failure = parseXml(report('x', [{ name: 'f', status: 'failed' }])).children[0]?.children[0];
    assert.equal(failure?.text, 'stack <with> ]]> inside');
  });

  it('refuses what is not well-formed or not JUnit', () => {
    assert.throws(() => parseXml('<a><b></a>'), /<\/a> closes <b>/);
    assert.throws(() => parseXml('<a>'), /never closed/);
    assert.throws(() => readJUnit('<html></html>'), /not <testsuite>/);
  });

  it('merges the shards of a run into one <testsuites> report with the totals', () => {
    const merged = mergeJUnit([
      {
        source: 's1.xml',
        xml: report(shardSuiteName({ index: 1, total: 2 }), [{ name: 'a' }, { name: 'c', status: 'failed' }]),
      },
      {
        source: 's2.xml',
        xml: report(shardSuiteName({ index: 2, total: 2 }), [{ name: 'b' }, { name: 'd', status: 'skipped' }]),
      },
    ]);
    assert.deepEqual(merged.problems, []);
    assert.equal(merged.tests, 4);
    assert.equal(merged.failures, 1);
    assert.equal(merged.skipped, 1);
    const again = readJUnit(merged.xml);
    assert.deepEqual(
      again.map((s) => s.name),
      ['irsa-conformance shard 1/2', 'irsa-conformance shard 2/2'],
    );
    assert.deepEqual(again.flatMap((s) => s.cases.map((c) => `${c.name}:${c.status}`)).sort(), [
      'a:passed',
      'b:passed',
      'c:failed',
      'd:skipped',
    ]);
  });

  it('names a missing shard, a shard given twice, a test case in two reports, a mix with an unsharded run', () => {
    const s1 = report(shardSuiteName({ index: 1, total: 3 }), [{ name: 'a' }]);
    const s3 = report(shardSuiteName({ index: 3, total: 3 }), [{ name: 'a' }]);
    const m = mergeJUnit([
      { source: 'one.xml', xml: s1 },
      { source: 'again.xml', xml: s1 },
      { source: 'three.xml', xml: s3 },
      { source: 'full.xml', xml: report('irsa-conformance', [{ name: 'z' }]) },
    ]);
    const problems = m.problems.join('\n');
    assert.match(problems, /shard 2\/3 is missing/);
    assert.match(problems, /shard 1\/3 is there 2 times \(one\.xml, again\.xml\)/);
    assert.match(problems, /test case "a" is in one\.xml and again\.xml/);
    assert.match(problems, /unsharded run mixed with shards: full\.xml/);
    assert.match(mergeJUnit([{ source: 'bad.xml', xml: '<testsuite>' }]).problems.join(), /bad\.xml: not well-formed/);
  });

  it('writes the one-case report of a run that could not start, readable by the same reader', () => {
    const [suite] = readJUnit(failedRunJUnit('irsa-conformance', 'run', 'needs <X> & "Y"', 'detail ]]> end'));
    assert.equal(suite?.failures, 1);
    assert.equal(suite?.cases[0]?.message, 'needs <X> & "Y"');
  });
});

describe('--shard', () => {
  it('takes i/n with 1 <= i <= n, and names the JUnit suite after it', () => {
    assert.deepEqual(requireShard('2/3'), { index: 2, total: 3 });
    assert.equal(requireShard(undefined), undefined);
    for (const bad of ['0/2', '3/2', '1/0', 'x'])
      assert.throws(
        () => requireShard(bad),
        (e: unknown) => isUsageError(e) && /names no shard/.test(e.message),
      );
    assert.deepEqual(shardOfSuiteName(shardSuiteName({ index: 2, total: 3 })), { index: 2, total: 3 });
    assert.equal(shardOfSuiteName('irsa-conformance'), undefined);
  });
});

describe('in-cluster configuration', () => {
  const sa = path.join(work, 'serviceaccount');
  mkdirSync(sa, { recursive: true });
  const payload = Buffer.from(
    JSON.stringify({ sub: 'system:serviceaccount:irsa-conformance:irsa-conformance' }),
  ).toString('base64url');
  writeFileSync(path.join(sa, 'token'), `eyJhbGciOiJSUzI1NiJ9.${payload}.c2ln`);
  writeFileSync(path.join(sa, 'namespace'), 'irsa-conformance');
  writeFileSync(path.join(sa, 'ca.crt'), 'not used here');
  const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };

  it('is detected from KUBERNETES_SERVICE_HOST/PORT and the mounted token, and names the ServiceAccount', () => {
    const c = detectInCluster(env, sa);
    assert.deepEqual(c, {
      server: 'https://[fd00::1]:443',
      tokenFile: path.join(sa, 'token'),
      caFile: path.join(sa, 'ca.crt'),
      namespace: 'irsa-conformance',
      serviceAccount: 'irsa-conformance/irsa-conformance',
    });
    assert.equal(detectInCluster({}, sa), undefined, 'not in a pod');
    assert.equal(detectInCluster(env, path.join(work, 'none')), undefined, 'no token mounted');
  });

  it('becomes a kubeconfig that names the token file (read anew by the client), never the token', async () => {
    const c = detectInCluster(env, sa);
    assert.ok(c);
    const { file, cleanup } = writeInClusterKubeconfig(c);
    try {
      const text = readFileSync(file, 'utf8');
      assert.ok(!text.includes(payload), 'the token is not in the file');
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      assert.equal(kc.getCurrentCluster()?.server, 'https://[fd00::1]:443');
      const opts: { headers: Record<string, string> } = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      assert.equal(opts.headers.Authorization, `Bearer eyJhbGciOiJSUzI1NiJ9.${payload}.c2ln`);
    } finally {
      cleanup();
    }
  });

  it('is what the live target uses with no kubeconfig set or at ~/.kube/config, and only then', () => {
    const home = process.env.HOME;
    process.env.HOME = work;
    try {
      const found = resolveKubeconfig(undefined, () => detectInCluster(env, sa));
      assert.match(readFileSync(found.file, 'utf8'), /tokenFile/);
      found.cleanup();
      const explicit = path.join(work, 'explicit.kubeconfig');
      writeFileSync(explicit, 'apiVersion: v1\nkind: Config\n');
      assert.equal(resolveKubeconfig(explicit, () => detectInCluster(env, sa)).file, explicit);
      assert.throws(
        () => resolveKubeconfig(undefined, () => undefined),
        (e: unknown) => isUsageError(e) && /in a pod, mount a ServiceAccount token/.test(e.hint),
      );
    } finally {
      process.env.HOME = home;
    }
  });
});

describe('the entrypoint under Sonobuoy', () => {
  it('hands over a report naming the cause when the run could not start (exit 2)', async () => {
    const results = path.join(work, 'sonobuoy-bad');
    const reports = path.join(results, 'irsa-conformance');
    const stderrTail =
      'irsa-conformance run icx: live target\nirsa: verify-only mode needs IRSA_VERIFY_NAMESPACE\nhint: name the ServiceAccount\n';
    assert.deepEqual(usageFailure(stderrTail), {
      cause: 'verify-only mode needs IRSA_VERIFY_NAMESPACE',
      hint: 'name the ServiceAccount',
    });
    await handOverToSonobuoy(results, reports, { code: 2, stderrTail, command: 'verify' });
    const [suite] = readJUnit(readFileSync(path.join(reports, 'junit.xml'), 'utf8'));
    assert.equal(suite?.failures, 1);
    assert.equal(suite?.cases[0]?.name, 'irsa-conformance verify ran to completion');
    assert.match(suite?.cases[0]?.message ?? '', /needs IRSA_VERIFY_NAMESPACE \(hint: name the ServiceAccount\)/);
    assert.equal(readFileSync(path.join(results, 'done'), 'utf8'), path.join(results, SONOBUOY_TARBALL));
  });
});

describe("IRSA_NODE_IMAGES (the real node's extra images)", () => {
  const archive = async (name: string, annotations: Record<string, string> | undefined) => {
    const file = path.join(work, name);
    const index = {
      schemaVersion: 2,
      manifests: [{ mediaType: 'x', digest: 'sha256:0', size: 0, ...(annotations ? { annotations } : {}) }],
    };
    await pipeline(
      Readable.from(
        tarChunks([
          { path: 'index.json', type: 'file', mode: 0o644, mtime: 0, content: Buffer.from(JSON.stringify(index)) },
        ]),
      ),
      createWriteStream(file),
    );
    return file;
  };

  it('names each archive by its index.json; refuses a missing file, a file that is no archive, an archive without a name', async () => {
    const named = await archive('named.tar', { 'io.containerd.image.name': 'localhost/irsa-conformance:1.2.3' });
    const byRef = await archive('ref.tar', { 'org.opencontainers.image.ref.name': 'example.invalid/x/y:4' });
    assert.deepEqual(resolveNodeImages([named, byRef]), [
      { ref: 'localhost/irsa-conformance:1.2.3', tar: named },
      { ref: 'example.invalid/x/y:4', tar: byRef },
    ]);
    const tagOnly = await archive('tag.tar', { 'org.opencontainers.image.ref.name': '1.2.3' });
    const notTar = path.join(work, 'not.tar');
    writeFileSync(notTar, '{}');
    for (const [file, re] of [
      [path.join(work, 'missing.tar'), /does not exist/],
      [tagOnly, /names no image/],
      [notTar, /names no image|is not an OCI archive/],
    ] as const)
      assert.throws(
        () => resolveNodeImages([file]),
        (e: unknown) => isUsageError(e) && re.test(e.message) && /IRSA_NODE_IMAGES/.test(e.message),
      );
  });
});
