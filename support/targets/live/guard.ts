/**
 * The live target's guard: the harness writes to an AWS account only when the account the
 * credentials belong to (GetCallerIdentity) is the one the user confirmed in the configuration.
 * A wrong profile must not create buckets and identity providers in production, so a mismatch, or
 * no confirmation at all in provision mode, stops the run before anything is created (exit 2).
 */
import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { describeAwsError } from '../../aws/errors.ts';
import { UsageError } from '../../errors.ts';

export interface CallerIdentity {
  account: string;
  arn: string;
}

export async function callerIdentity(sts: STSClient, where: string): Promise<CallerIdentity> {
  try {
    const id = await sts.send(new GetCallerIdentityCommand({}));
    return { account: id.Account ?? '', arn: id.Arn ?? '' };
  } catch (e) {
    const name = (e as Error).name;
    const noCredentials = name === 'CredentialsProviderError' || /credential/i.test(name);
    throw new UsageError(
      `cannot tell which AWS identity the harness runs as (GetCallerIdentity at ${where}): ${describeAwsError(e).split('\n')[0]}`,
      noCredentials
        ? 'configure the AWS default credential chain: AWS_PROFILE (and `aws sso login`), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a web identity'
        : 'check the region (IRSA_REGION / AWS_REGION), the network path to STS, and IRSA_AWS_ENDPOINT if you set one',
      { cause: e },
    );
  }
}

/**
 * Refuses (UsageError) unless the caller's account is the confirmed one. Provision mode requires a
 * confirmation; verify-only writes nothing, but a confirmation that does not match is still refused
 * (it means the credentials are not the ones the user thinks).
 */
export function checkAccountGuard(opts: {
  mode: 'provision' | 'verify-only';
  confirmedAccountId: string | undefined;
  caller: CallerIdentity;
}): void {
  const { caller, confirmedAccountId } = opts;
  if (confirmedAccountId === undefined) {
    if (opts.mode === 'provision') {
      throw new UsageError(
        `IRSA_AWS_ACCOUNT_ID is not set: the live target writes to AWS only in an account you confirm (the credentials are ${caller.arn}, account ${caller.account})`,
        `if account ${caller.account} is the one to create the test resources in, set IRSA_AWS_ACCOUNT_ID=${caller.account}; or use IRSA_LIVE_MODE=verify-only`,
      );
    }
    return;
  }
  if (caller.account !== confirmedAccountId) {
    throw new UsageError(
      `the AWS credentials belong to account ${caller.account} (${caller.arn}), but IRSA_AWS_ACCOUNT_ID confirms account ${confirmedAccountId}`,
      'switch the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, …) to the confirmed account, or correct IRSA_AWS_ACCOUNT_ID',
    );
  }
}
