@least-privilege
Feature: The least-privilege lint fails what any ServiceAccount could use in every profile, and the rest in the strict one
  The lint (support/policy/lint.ts) reads a role's trust policy and its permissions policy and
  names what grants more than one ServiceAccount its own bucket. Its findings have a severity, and
  the profile decides which of them fail the scenario that lints the team's policies
  (02-application.feature, "The role follows least privilege"):
  - critical, in every profile: a trust policy that any ServiceAccount of the cluster can satisfy
    (no <issuer>:sub condition, or a wildcard namespace such as system:serviceaccount:*:*): whoever
    may create a pod in any namespace holds the role;
  - error, in the strict profile (IRSA_LINT_PROFILE=strict, or lint.profile: strict in the setup
    description): every ServiceAccount of one namespace, permissions with s3:* or object actions on
    Resource "*"; the default profile reports them as warnings and the scenario passes.
  These scenarios lint deliberately over-broad policies (fixtures/policies/, written for team
  "sample" the way the setup's templates are) under both profiles, so the report shows what each
  profile makes of each mistake. They create nothing.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" as the setup names it

  Scenario Outline: <mistake> fails the default profile too: any ServiceAccount of the cluster can assume the role
    Given the trust policy "<fixture>" written for team "sample"
    Then the least-privilege lint reports "trust-any-service-account" as its only error
    And under the strict profile the lint fails, naming "trust-any-service-account"
    And under the default profile the lint fails too, naming "trust-any-service-account"

    Examples:
      | mistake                                                             | fixture                   |
      | A trust policy without a :sub condition                             | trust-no-sub              |
      | A trust policy admitting system:serviceaccount:*:*                  | trust-any-service-account |
      | A trust policy admitting its ServiceAccount's name in any namespace | trust-any-namespace       |

  Scenario Outline: <mistake> fails the strict profile and is a warning in the default one
    Given the <kind> policy "<fixture>" written for team "sample"
    Then the least-privilege lint reports "<rule>" as its only error
    And under the strict profile the lint fails, naming "<rule>"
    And under the default profile the lint passes and reports "<rule>" as a warning

    Examples:
      | mistake                                                        | kind       | fixture                          | rule                                     |
      | A trust policy admitting every ServiceAccount of its namespace | trust      | trust-namespace-service-accounts | trust-namespace-service-accounts         |
      | A permissions policy granting s3:*                             | permission | permission-s3-star               | permission-wildcard-action               |
      | A permissions policy granting object actions on Resource "*"   | permission | permission-objects-anywhere      | permission-object-action-on-any-resource |
