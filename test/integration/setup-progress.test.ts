/**
 * The first set-up says what it is doing (issue 15, item 9): one line when it starts, naming what
 * it builds and the expected total; one line when each component's build starts and one when it
 * ends, with its elapsed time; a closing line. A cached set-up says nothing. The Go toolchain is a
 * stand-in here (a script that "builds" empty binaries where `go build -o` is told to), so the
 * test checks the lines and the caching, not a real build (a real cold build takes minutes:
 * measured, its times are in tools/build-go-components.sh).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBash } from '../support/bash.ts';

const FAKE_GO = `#!/usr/bin/env bash
# A stand-in for the go command, enough for tools/build-go-components.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "$1" in
  env) echo go1.26.8 ;;
  mod)
    # go mod download -json <module>@<version>: a directory (and a go.mod) for it
    mod=\${@: -1}; dir="$here/modcache/$mod"; mkdir -p "$dir"
    printf 'module x\\n\\ngo 1.26.0\\n' > "$dir/go.mod"
    # The lines the build-time changes of tools/build-go-components.sh substitute, once each.
    case "$mod" in
      github.com/aws/amazon-eks-pod-identity-webhook@*)
        printf '%s\\n' 'addr := fmt.Sprintf(":%d", *port)' 'metricsAddr := fmt.Sprintf(":%d", *metricsPort)' > "$dir/main.go" ;;
      sigs.k8s.io/kwok@*)
        mkdir -p "$dir/pkg/kwok/server"
        printf '\\t\\t\\terr = svc.ServeTLS(tlsListener, certFile, privateKeyFile)\\n\\t\\terr = svc.Serve(unmatchedListener)\\n' > "$dir/pkg/kwok/server/server.go" ;;
    esac
    printf '{\\n\\t"Dir": "%s",\\n\\t"GoMod": "%s/go.mod"\\n}\\n' "$dir" "$dir" ;;
  get) echo "go: added something" ;;
  build)
    shift; out=""; pkgs=()
    while [ $# -gt 0 ]; do
      case "$1" in -o) out=$2; shift 2 ;; -*) shift ;; *) pkgs+=("$1"); shift ;; esac
    done
    for p in "\${pkgs[@]}"; do
      echo "example.com/$p"
      if [[ "$out" == */ ]]; then
        name=$(basename "$p"); [ "$p" = . ] && name=$(basename "$PWD")
        : > "$out$name"; chmod +x "$out$name"
      else : > "$out"; chmod +x "$out"; fi
    done ;;
  *) echo "fake go: $*" >&2; exit 1 ;;
esac
`;

describe('the first set-up says what it builds, and how long each part took', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-setup-progress-'));
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'go'), FAKE_GO);
    chmodSync(path.join(bin, 'go'), 0o755);
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, IRSA_CACHE: path.join(dir, 'cache') };
    for (const k of ['IRSA_WEBHOOK_BIN', 'IRSA_KWOK_BIN', 'IRSA_ETCD_BIN', 'IRSA_KUBE_BIN_DIR']) delete env[k];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a cold set-up: the plan with its expected total, then each component started and built with its time', async () => {
    const r = await runBash(['tools/build-go-components.sh', 'all'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(
      lines[0] ?? '',
      /^\[bootstrap\] first set-up of the embedded target: building webhook kwok etcd kubernetes from the Go module proxy into .* \(expected about 6m30s on 2 cores with empty Go caches; built once, then cached\)$/,
    );
    const order = ['webhook', 'kwok', 'etcd', 'kubernetes'];
    order.forEach((c, i) => {
      const ended = lines.findIndex((l) =>
        new RegExp(`^\\[bootstrap\\] ${c} built in \\d+s \\(${i + 1} of 4, \\d+s so far\\)$`).test(l),
      );
      assert.ok(ended > 0, `an end line for ${c}:\n${r.stderr}`);
      assert.match(lines[ended - 1] ?? '', /^\[bootstrap\] building /, `the start line of ${c} comes right before it`);
    });
    assert.match(lines.at(-1) ?? '', /^\[bootstrap\] the embedded target's components are built: \d+s in all$/);
  });

  it('a cached set-up says nothing', async () => {
    const r = await runBash(['tools/build-go-components.sh', 'all'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('components the user brings are left out of the plan and its total', async () => {
    const fresh = {
      ...env,
      IRSA_CACHE: path.join(dir, 'cache2'),
      IRSA_KUBE_BIN_DIR: '/opt/envtest',
      IRSA_ETCD_BIN: '/opt/etcd',
    };
    const r = await runBash(['tools/build-go-components.sh', 'all'], fresh);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^\[bootstrap\] first set-up of the embedded target: building webhook kwok from .* \(expected about 2m15s /,
    );
    assert.doesNotMatch(r.stderr, /kubernetes|etcd built/);
  });
});
