@least-privilege
Feature: The least-privilege lint fails in the strict profile and warns in the default one
  The lint (support/policy/lint.ts) reads a role's trust policy and its permissions policy and
  names what grants more than one ServiceAccount its own bucket: a trust policy without a
  <issuer>:sub condition or with system:serviceaccount:*:* (any ServiceAccount of the cluster),
  permissions with s3:* or object actions on Resource "*". Which of its findings fail a run is a
  choice of profile:
  - strict (IRSA_LINT_PROFILE=strict, or lint.profile: strict in the setup description): error
    findings fail the scenario that lints the team's policies (02-application.feature, "The role
    follows least privilege");
  - default: every finding is reported as a warning and the scenario passes.
  These scenarios lint deliberately over-broad policies (fixtures/policies/, written for team
  "sample" the way the setup's templates are) under both profiles, so the report shows what each
  profile makes of each mistake. They create nothing.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" as the setup names it

  Scenario Outline: <mistake> fails the strict profile and is a warning in the default one
    Given the <kind> policy "<fixture>" written for team "sample"
    Then the least-privilege lint reports "<rule>" as its only error
    And under the strict profile the lint fails, naming "<rule>"
    And under the default profile the lint passes and reports "<rule>" as a warning

    Examples:
      | mistake                                                      | kind       | fixture                     | rule                                     |
      | A trust policy without a :sub condition                      | trust      | trust-no-sub                | trust-any-service-account                |
      | A trust policy admitting system:serviceaccount:*:*           | trust      | trust-any-service-account   | trust-any-service-account                |
      | A permissions policy granting s3:*                           | permission | permission-s3-star          | permission-wildcard-action               |
      | A permissions policy granting object actions on Resource "*" | permission | permission-objects-anywhere | permission-object-action-on-any-resource |
