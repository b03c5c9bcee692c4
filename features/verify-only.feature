@verify-only
Feature: An existing IRSA setup still works, checked without changing anything
  Before an upgrade, a platform engineer checks that IAM roles for service accounts work on the
  cluster as it is: the live target in verify-only mode (IRSA_LIVE_MODE=verify-only) writes nothing
  to AWS and creates at most one short-lived pod, in the namespace the engineer names (none with
  IRSA_VERIFY_NO_POD). The infrastructure checks (@infrastructure) run in the same run on what was
  found; these scenarios follow the path of one ServiceAccount and role the engineer names, from a
  token to STS to S3, including the AccessDenied on a bucket the role must not read.
  Selected only in verify-only mode; other runs exclude @verify-only.

  Background:
    Given the ServiceAccount, role and buckets named in the verify-only settings

  Scenario: The detected dialect is reported
    Then the detected cluster dialect and where each value came from are attached to the report

  Scenario: The ServiceAccount is annotated with the role
    Then the ServiceAccount has the role-arn annotation of the webhook's prefix, set to the named role ARN

  Scenario: A token of the ServiceAccount passes the checks STS makes
    When the cluster issues a token for the ServiceAccount with the webhook's audience
    Then the token verifies against the published discovery documents and the identity provider, as STS checks it
    And the named role's trust policy admits the token

  Scenario: STS exchanges the token for the role's credentials
    When the cluster issues a token for the ServiceAccount with the webhook's audience
    And the token is exchanged at STS for credentials of the named role
    Then the credentials are those of a session of the named role

  Scenario: The role may read the allowed bucket and is denied the other
    When the cluster issues a token for the ServiceAccount with the webhook's audience
    And the token is exchanged at STS for credentials of the named role
    Then with the role's credentials, listing the allowed bucket succeeds
    And with the role's credentials, listing the denied bucket fails with AccessDenied

  @requires-runs-pods @requires-exec-into-pods
  Scenario: A pod of the ServiceAccount gets the role and uses it
    Given one short-lived pod of the ServiceAccount in its namespace
    Then the webhook injected the role ARN, the token file and the projected token volume into the pod
    And inside the pod the AWS CLI runs as a session of the named role
    And inside the pod the AWS CLI lists the allowed bucket
    And inside the pod the AWS CLI is denied listing the denied bucket with AccessDenied
