@tenant-isolation @requires-writes-allowed
Feature: Tenants are isolated: each uses its own bucket and no other tenant's
  Several tenants, each with its own namespace, ServiceAccount, role (trusting only that
  ServiceAccount), least-privilege policy and bucket, and one pod of the sample app. Each tenant
  writes its own bucket from inside its pod and is denied every other tenant's bucket.

  How the number of tenants is set: the setting `tenants` (IRSA_TENANTS, default 3). The outlines
  below list tenants 1 to 50; the tenant-matrix plugin (support/plugins/tenant-matrix.ts, a
  cucumber `pickles:filter`) keeps the rows up to the setting, so raising it adds tenants, and a
  setting above 50 is refused before anything is created (add rows to go further). Every
  tenant-matrix outline needs the @tenant-matrix tag and a `tenant` column.

  How it runs in parallel workers: a tenant's resources are named from the run id and the tenant's
  number only, and created once per run by whichever scenario needs them first (a lock file in the
  run directory; support/provision/tenants.ts); its AWS part (bucket, policy, role) and its
  Kubernetes part (namespace, ServiceAccount, pod) are created concurrently. They are shared:
  tenant n's scenarios reuse its one pod, and every tenant's denial scenario needs the other
  tenants' buckets. They are deleted when the suite has finished, all tenants concurrently.

  How a tenant stays cheap: the in-pod write and the caller identity run in one exec (two AWS CLI
  starts, the only ones a tenant costs); the denial attempts use the session the pod's credential
  chain obtains, AssumeRoleWithWebIdentity with the AWS_ROLE_ARN and the token read inside the pod,
  sent from the harness. The token and the session's secret parts are never logged. The diagnosis
  (every target) evaluates each tenant's trust and permission policies, as IAM has them, against
  every other tenant.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says

  @tenant-matrix @requires-runs-pods @requires-exec-into-pods
  Scenario Outline: Tenant <tenant> writes its own bucket from its pod, as its own role
    Given tenant <tenant> of the isolation matrix has its namespace, ServiceAccount, role, bucket and pod
    When the pod of tenant <tenant> writes to its own bucket
    Then tenant <tenant> wrote its own bucket as a session of its own role

    Examples:
      | tenant |
      | 1      |
      | 2      |
      | 3      |
      | 4      |
      | 5      |
      | 6      |
      | 7      |
      | 8      |
      | 9      |
      | 10     |
      | 11     |
      | 12     |
      | 13     |
      | 14     |
      | 15     |
      | 16     |
      | 17     |
      | 18     |
      | 19     |
      | 20     |
      | 21     |
      | 22     |
      | 23     |
      | 24     |
      | 25     |
      | 26     |
      | 27     |
      | 28     |
      | 29     |
      | 30     |
      | 31     |
      | 32     |
      | 33     |
      | 34     |
      | 35     |
      | 36     |
      | 37     |
      | 38     |
      | 39     |
      | 40     |
      | 41     |
      | 42     |
      | 43     |
      | 44     |
      | 45     |
      | 46     |
      | 47     |
      | 48     |
      | 49     |
      | 50     |

  @tenant-matrix @requires-runs-pods @requires-exec-into-pods @requires-enforces-iam
  Scenario Outline: Tenant <tenant> is denied every other tenant's bucket
    Given tenant <tenant> of the isolation matrix has its namespace, ServiceAccount, role, bucket and pod
    And every tenant of the isolation matrix has its role and bucket
    When tenant <tenant> tries to write to every other tenant's bucket with the session its pod gets
    Then tenant <tenant> is denied every other tenant's bucket

    Examples:
      | tenant |
      | 1      |
      | 2      |
      | 3      |
      | 4      |
      | 5      |
      | 6      |
      | 7      |
      | 8      |
      | 9      |
      | 10     |
      | 11     |
      | 12     |
      | 13     |
      | 14     |
      | 15     |
      | 16     |
      | 17     |
      | 18     |
      | 19     |
      | 20     |
      | 21     |
      | 22     |
      | 23     |
      | 24     |
      | 25     |
      | 26     |
      | 27     |
      | 28     |
      | 29     |
      | 30     |
      | 31     |
      | 32     |
      | 33     |
      | 34     |
      | 35     |
      | 36     |
      | 37     |
      | 38     |
      | 39     |
      | 40     |
      | 41     |
      | 42     |
      | 43     |
      | 44     |
      | 45     |
      | 46     |
      | 47     |
      | 48     |
      | 49     |
      | 50     |

  @tenant-matrix
  Scenario Outline: The policies of tenant <tenant> admit its own ServiceAccount and bucket and no other tenant's
    Given every tenant of the isolation matrix has its role and bucket
    Then the trust policy of tenant <tenant> admits its own ServiceAccount and no other tenant's
    And the permission policy of tenant <tenant> allows writing its own bucket and no other tenant's

    Examples:
      | tenant |
      | 1      |
      | 2      |
      | 3      |
      | 4      |
      | 5      |
      | 6      |
      | 7      |
      | 8      |
      | 9      |
      | 10     |
      | 11     |
      | 12     |
      | 13     |
      | 14     |
      | 15     |
      | 16     |
      | 17     |
      | 18     |
      | 19     |
      | 20     |
      | 21     |
      | 22     |
      | 23     |
      | 24     |
      | 25     |
      | 26     |
      | 27     |
      | 28     |
      | 29     |
      | 30     |
      | 31     |
      | 32     |
      | 33     |
      | 34     |
      | 35     |
      | 36     |
      | 37     |
      | 38     |
      | 39     |
      | 40     |
      | 41     |
      | 42     |
      | 43     |
      | 44     |
      | 45     |
      | 46     |
      | 47     |
      | 48     |
      | 49     |
      | 50     |
