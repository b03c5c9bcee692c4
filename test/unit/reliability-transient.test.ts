/**
 * Transient errors (issue 6): the named lists of retryable errors (Kubernetes: support/kube/errors.ts;
 * AWS: support/aws/errors.ts and the IAM propagation list), bounded backoff with a per-operation
 * deadline (support/retry.ts), and timeout messages that name the operation and what it waited for.
 * Errors are built the way the clients throw them (ApiException with a Status body; AWS service
 * exceptions with $metadata), no network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoSuchEntityException } from '@aws-sdk/client-iam';
import { ApiException } from '@kubernetes/client-node';
import { retryIamPropagation } from '../../support/aws/propagation.ts';
import { retryableDelete } from '../../support/cleanup.ts';
import { OperationTimeout } from '../../support/errors.ts';
import { isAlreadyExists, isTransientKubeError, retryKubeCreate } from '../../support/kube/errors.ts';
import { retry } from '../../support/retry.ts';

function kubeError(code: number, reason: string): ApiException<string> {
  return new ApiException(code, `HTTP-Code: ${code}`, JSON.stringify({ kind: 'Status', reason, code }), {});
}

function awsError(name: string, status = 400): Error {
  return Object.assign(new Error(`${name} happened`), {
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
  });
}

function networkError(code: string): Error {
  return Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
}

describe('transient Kubernetes errors', () => {
  it('throttling, server errors, timeouts and dropped connections are transient; answers are not', () => {
    for (const [code, reason] of [
      [429, 'TooManyRequests'],
      [500, 'InternalError'],
      [503, 'ServiceUnavailable'],
      [504, 'Timeout'],
    ] as const)
      assert.ok(isTransientKubeError(kubeError(code, reason)), `${code} ${reason}`);
    assert.ok(isTransientKubeError(networkError('ECONNRESET')));
    assert.ok(isTransientKubeError(networkError('ECONNREFUSED')));
    for (const [code, reason] of [
      [404, 'NotFound'],
      [403, 'Forbidden'],
      [422, 'Invalid'],
      [400, 'BadRequest'],
    ] as const)
      assert.ok(!isTransientKubeError(kubeError(code, reason)), `${code} ${reason} is an answer`);
    assert.ok(!isTransientKubeError(new Error('plain')));
  });

  it('409 Conflict is transient for updates and deletes only; 409 AlreadyExists never', () => {
    assert.ok(!isTransientKubeError(kubeError(409, 'Conflict')));
    assert.ok(isTransientKubeError(kubeError(409, 'Conflict'), { conflicts: true }));
    assert.ok(!isTransientKubeError(kubeError(409, 'AlreadyExists'), { conflicts: true }));
    assert.ok(isAlreadyExists(kubeError(409, 'AlreadyExists')));
  });

  it('a create is retried through throttling, and AlreadyExists after a lost answer counts as created', async () => {
    let calls = 0;
    const created = await retryKubeCreate(
      async () => {
        calls++;
        if (calls === 1) throw kubeError(429, 'TooManyRequests');
        if (calls === 2) throw kubeError(504, 'Timeout');
        throw kubeError(409, 'AlreadyExists');
      },
      { operation: 'creating namespace x', timeoutSeconds: 10 },
    );
    assert.equal(created, undefined);
    assert.equal(calls, 3);
  });

  it('AlreadyExists on the first attempt is an answer (someone else owns that name)', async () => {
    await assert.rejects(
      retryKubeCreate(
        async () => {
          throw kubeError(409, 'AlreadyExists');
        },
        { operation: 'creating namespace x', timeoutSeconds: 10 },
      ),
      (e: unknown) => isAlreadyExists(e),
    );
  });

  it('a create that stays unavailable times out with a message naming the operation and the wait', async () => {
    const started = Date.now();
    await assert.rejects(
      retryKubeCreate(
        async () => {
          throw kubeError(503, 'ServiceUnavailable');
        },
        { operation: 'creating Deployment ns/app', timeoutSeconds: 1 },
      ),
      (e: unknown) =>
        e instanceof OperationTimeout &&
        /^creating Deployment ns\/app timed out after 1 s waiting for the API server to accept the request/.test(
          e.message,
        ) &&
        (e.cause as ApiException<string>).code === 503,
    );
    assert.ok(Date.now() - started < 2500, 'bounded by the deadline');
  });
});

describe('cleanup retries', () => {
  it('retries conflicts, throttling and dropped connections on deletion, not refusals', () => {
    assert.ok(retryableDelete(awsError('DeleteConflict', 409)));
    assert.ok(retryableDelete(awsError('BucketNotEmpty', 409)));
    assert.ok(retryableDelete(awsError('Throttling', 400)));
    assert.ok(retryableDelete(kubeError(409, 'Conflict')));
    assert.ok(retryableDelete(kubeError(429, 'TooManyRequests')));
    assert.ok(retryableDelete(networkError('ECONNRESET')));
    assert.ok(!retryableDelete(awsError('AccessDenied', 403)));
    assert.ok(!retryableDelete(kubeError(403, 'Forbidden')));
  });
});

describe('bounded retries', () => {
  it('backs off between attempts and stops at the deadline, naming operation and wait', async () => {
    const waits: number[] = [];
    let last = Date.now();
    await assert.rejects(
      retry(
        async () => {
          const now = Date.now();
          waits.push(now - last);
          last = now;
          throw new Error('not yet');
        },
        {
          operation: 'reading back role r',
          waitingFor: 'IAM to propagate the new role',
          timeoutSeconds: 1,
          retryable: () => true,
          initialDelayMs: 50,
          maxDelayMs: 400,
        },
      ),
      (e: unknown) =>
        e instanceof OperationTimeout &&
        e.message === 'reading back role r timed out after 1 s waiting for IAM to propagate the new role',
    );
    assert.ok(waits.length >= 3 && waits.length <= 8, `a handful of attempts, not a busy loop: ${waits.length}`);
    assert.ok((waits.at(-1) ?? 0) >= (waits[1] ?? 0), `the waits grow: ${waits.join(', ')}`);
  });

  it('does not retry what is not on the list', async () => {
    let calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw awsError('AccessDenied', 403);
        },
        { operation: 'x', waitingFor: 'y', timeoutSeconds: 5, retryable: () => false },
      ),
      /AccessDenied/,
    );
    assert.equal(calls, 1);
  });

  it('IAM propagation: NoSuchEntity right after creation is waited out, and the wait is reported', async () => {
    let calls = 0;
    const lines: string[] = [];
    const out = await retryIamPropagation(
      async () => {
        calls++;
        if (calls < 3)
          throw new NoSuchEntityException({ message: 'Role r not found', $metadata: { httpStatusCode: 404 } });
        return 'role';
      },
      { operation: 'reading back role r', timeoutSeconds: 5, initialDelayMs: 20, log: (l) => lines.push(l) },
    );
    assert.equal(out.value, 'role');
    assert.equal(out.attempts, 3);
    assert.match(lines.join('\n'), /IAM propagation: reading back role r succeeded after 3 attempts/);
  });
});
