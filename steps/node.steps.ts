/**
 * Steps that only a real node answers (features/08-real-node.feature, @requires-real-node): what
 * the kubelet puts into the container for the webhook's projected token volume, who can read it,
 * and where an exec runs. Tokens stay in memory, registered for redaction; only claims are compared.
 */
import assert from 'node:assert/strict';
import { Then } from '@cucumber/cucumber';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { decodeTokenClaims } from '../support/oidc/token.ts';
import { registerSecret } from '../support/redact.ts';

Then(
  "inside the pod of team {string} the token file is a symlink into the projected volume's ..data directory",
  async function (this: IrsaWorld, label: string) {
    await this.podOf(label);
    // What the kubelet's atomic writer makes: <mount>/token -> ..data/token, ..data -> ..<timestamp>.
    await this.runInPod(label, 'f="$AWS_WEB_IDENTITY_TOKEN_FILE"; readlink "$f"; readlink "$(dirname "$f")/..data"');
    const e = this.lastExec;
    assert.equal(e?.exitCode, 0, `the token file is not a symlink: ${e?.stderr.trim().slice(0, 300)}`);
    const [link, data] = (e?.stdout ?? '').trim().split('\n');
    const file = this.state.target.dialect.tokenFileName;
    assert.equal(link, `..data/${file}`, `the token file links to ${JSON.stringify(link)}, not ..data/${file}`);
    assert.match(
      data ?? '',
      /^\.\.\d{4}_\d{2}_\d{2}_/,
      `..data links to ${JSON.stringify(data)}, not a timestamped directory`,
    );
  },
);

Then(
  'the token of team {string} is what a TokenRequest for its pod returns: the same issuer, subject, audience and lifetime, bound to the pod, its ServiceAccount and its node',
  async function (this: IrsaWorld, label: string) {
    const pod = await this.podOf(label);
    const tenant = this.tenant(label);
    const token = this.tokens.get(label);
    assert.ok(token, 'no token was read');
    const d = this.state.target.dialect;
    const source = pod.spec?.volumes
      ?.flatMap((v) => v.projected?.sources ?? [])
      .find((s) => s.serviceAccountToken?.audience === d.audience)?.serviceAccountToken;
    assert.ok(source, `the pod has no projected token for audience ${d.audience}`);
    const requested = await this.clients.core.createNamespacedServiceAccountToken({
      name: tenant.serviceAccount,
      namespace: tenant.namespace,
      body: {
        spec: {
          audiences: [source.audience as string],
          expirationSeconds: source.expirationSeconds ?? 3600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
        },
      },
    });
    const reference = requested.status?.token;
    assert.ok(reference, 'the TokenRequest returned no token');
    registerSecret(reference);
    const have = decodeTokenClaims(token);
    const want = decodeTokenClaims(reference);
    this.attachJson('claims of the token in the pod and of a TokenRequest for the pod', {
      inPod: have.all,
      tokenRequest: want.all,
    });
    assert.equal(have.iss, want.iss, `iss ${have.iss} differs from a TokenRequest's ${want.iss}`);
    assert.equal(have.sub, want.sub, `sub ${have.sub} differs from a TokenRequest's ${want.sub}`);
    assert.deepEqual(have.aud, want.aud, `aud ${JSON.stringify(have.aud)} differs from ${JSON.stringify(want.aud)}`);
    const lifetime = (c: typeof have) => (c.exp ?? 0) - (c.iat ?? 0);
    assert.equal(
      lifetime(have),
      lifetime(want),
      `the token lives ${lifetime(have)} s, a TokenRequest's ${lifetime(want)} s`,
    );
    const k = have.kubernetes ?? {};
    assert.equal(k.pod, pod.metadata?.name, `the token is bound to pod ${k.pod}, not ${pod.metadata?.name}`);
    assert.equal(k.podUid, pod.metadata?.uid, `the token is bound to pod uid ${k.podUid}, not this pod's`);
    assert.equal(k.serviceAccountUid, want.kubernetes?.serviceAccountUid, 'the token names another ServiceAccount uid');
    assert.equal(
      k.node,
      pod.spec?.nodeName,
      `the token is bound to node ${k.node}, the pod runs on ${pod.spec?.nodeName}`,
    );
  },
);

Then(
  'inside the pod of team {string} commands run as user {int}',
  async function (this: IrsaWorld, label: string, uid: number) {
    await this.runInPod(label, 'id -u');
    assert.equal(this.lastExec?.exitCode, 0, `id -u failed: ${this.lastExec?.stderr.trim()}`);
    assert.equal(this.lastExec?.stdout.trim(), String(uid), `commands run as user ${this.lastExec?.stdout.trim()}`);
  },
);

Then(
  "a command exec'd into the pod of team {string} runs inside its container, whose first process is the container's command",
  async function (this: IrsaWorld, label: string) {
    const pod = await this.podOf(label);
    const c = pod.spec?.containers[0];
    const expected = [...(c?.command ?? []), ...(c?.args ?? [])].join(' ');
    // In the container's own pid namespace, process 1 is what the container runs; a command run
    // anywhere else (the node's host, an emulated pod) sees another process 1.
    await this.runInPod(label, "tr '\\0' ' ' </proc/1/cmdline");
    assert.equal(this.lastExec?.exitCode, 0, `reading /proc/1/cmdline failed: ${this.lastExec?.stderr.trim()}`);
    assert.equal(
      this.lastExec?.stdout.trim(),
      expected,
      `the exec'd command sees process 1 ${JSON.stringify(this.lastExec?.stdout.trim())}, not the container's ${JSON.stringify(expected)}: it did not run inside the container`,
    );
  },
);
