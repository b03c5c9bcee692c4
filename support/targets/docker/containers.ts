/**
 * testcontainers' container classes with one change: published ports bound to the host's
 * loopback (127.0.0.1) instead of every interface, when the engine is local. The emulator trusts
 * its callers (LocalStack community checks nothing), so it must not be reachable from the network;
 * Docker publishes on 0.0.0.0 unless a HostIp is given. With a remote engine (DOCKER_HOST=tcp://…,
 * or the harness in a container talking to the host's engine) the harness reaches the ports
 * through the engine host's address, so they are left as Docker binds them.
 */
import { K3sContainer } from '@testcontainers/k3s';
import { LocalstackContainer } from '@testcontainers/localstack';
import { GenericContainer } from 'testcontainers';

export const LOOPBACK = '127.0.0.1';

/** Sets HostIp on every port binding (exported for tests). */
export function bindPortsToLoopback(hostConfig: { PortBindings?: Record<string, { HostIp?: string }[]> }): void {
  for (const bindings of Object.values(hostConfig.PortBindings ?? {})) {
    for (const b of bindings) b.HostIp = LOOPBACK;
  }
}

export class LoopbackGenericContainer extends GenericContainer {
  constructor(
    image: string,
    private readonly loopback: boolean,
  ) {
    super(image);
  }
  protected override async beforeContainerCreated(): Promise<void> {
    if (this.loopback) bindPortsToLoopback(this.hostConfig);
  }
}

export class LoopbackLocalstackContainer extends LocalstackContainer {
  constructor(
    image: string,
    private readonly loopback: boolean,
  ) {
    super(image);
  }
  protected override async beforeContainerCreated(): Promise<void> {
    await super.beforeContainerCreated();
    if (this.loopback) bindPortsToLoopback(this.hostConfig);
  }
}

export class LoopbackK3sContainer extends K3sContainer {
  constructor(
    image: string,
    private readonly loopback: boolean,
  ) {
    super(image);
  }
  protected override async beforeContainerCreated(): Promise<void> {
    await super.beforeContainerCreated();
    if (this.loopback) bindPortsToLoopback(this.hostConfig);
  }
}
