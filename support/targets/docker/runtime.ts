/**
 * Is there a container engine to run the docker target on? Asked before anything is created:
 * without one, `-p docker` is bad input for this machine (exit 2), with the cause in one line and
 * the embedded target as the way out.
 *
 * testcontainers decides which engine it talks to (DOCKER_HOST, ~/.testcontainers.properties,
 * the default and rootless sockets, TESTCONTAINERS_HOST_OVERRIDE); this module asks it the same
 * question and, when the answer is no, names what was tried.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ContainerRuntimeClient } from 'testcontainers';
import { UsageError } from '../../errors.ts';

export const NO_DOCKER_HINT =
  'start Docker (or point DOCKER_HOST at a running engine) to use -p docker, or run the embedded target, which needs no Docker: npm run conformance (-p embedded)';

/** What was looked for, in one line (no engine answered any of it). */
export function describeMissingRuntime(env: NodeJS.ProcessEnv = process.env, exists = existsSync): string {
  if (env.DOCKER_HOST) return `no container engine answers at DOCKER_HOST=${env.DOCKER_HOST}`;
  const sockets = ['/var/run/docker.sock', join(homedir(), '.docker/run/docker.sock')];
  if (env.XDG_RUNTIME_DIR) sockets.push(join(env.XDG_RUNTIME_DIR, 'docker.sock'));
  const present = sockets.filter((s) => exists(s));
  if (present.length === 0)
    return `Docker is not running here: no engine socket (${sockets.join(', ')}) and DOCKER_HOST is unset`;
  return `no container engine answers on ${present.join(', ')}`;
}

/**
 * The container runtime client, or a UsageError saying there is none. Nothing is created: the
 * client only reads the engine's info.
 */
export async function requireContainerRuntime(env: NodeJS.ProcessEnv = process.env): Promise<ContainerRuntimeClient> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    return await getContainerRuntimeClient();
  } catch (e) {
    throw new UsageError(`the docker target needs a container engine: ${describeMissingRuntime(env)}`, NO_DOCKER_HINT, {
      cause: e,
    });
  }
}

/** True when the engine's published ports are reached on this machine's loopback (local socket engine). */
export function runtimeIsLocal(host: string): boolean {
  return host === 'localhost' || host === '127.0.0.1' || host === '::1';
}
