/**
 * What a failed scenario attaches before its resources are deleted: the pods as the API server
 * has them, the webhook's and the emulator's log tails, the decoded claims of any token the
 * scenario read (never the token), and the last in-pod command with its output.
 */
import { existsSync, readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { IrsaWorld } from '../cucumber/world.ts';
import { describeToken } from '../oidc/token.ts';

export interface Diagnostic {
  body: string;
  mediaType: string;
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return `(no log at ${file})`;
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

export async function collectDiagnostics(world: IrsaWorld): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  for (const [label, pod] of world.pods) {
    const ns = pod.metadata?.namespace as string;
    const name = pod.metadata?.name as string;
    const fresh = await world.clients.core.readNamespacedPod({ namespace: ns, name }).catch(() => pod);
    const { managedFields: _ignored, ...metadata } = fresh.metadata ?? {};
    out.push({
      body: `# pod of team ${label}\n${stringify({ metadata, spec: fresh.spec, status: fresh.status })}`,
      mediaType: 'text/yaml',
    });
  }
  for (const [label, token] of world.tokens) {
    out.push({
      body: JSON.stringify({ [`token of team ${label} (decoded, signature omitted)`]: describeToken(token) }, null, 2),
      mediaType: 'application/json',
    });
  }
  if (world.lastExec) {
    const e = world.lastExec;
    out.push({
      body: `$ ${e.command}\nexit code ${e.exitCode}\n--- stdout\n${e.stdout.slice(-4000)}\n--- stderr\n${e.stderr.slice(-4000)}`,
      mediaType: 'text/plain',
    });
  }
  const logs = world.state.target.logs;
  for (const component of ['pod-identity-webhook', 'webhook', 'moto']) {
    const file = logs[component];
    if (file)
      out.push({ body: `# last lines of the ${component} log (${file})\n${tail(file, 40)}`, mediaType: 'text/plain' });
  }
  return out;
}
