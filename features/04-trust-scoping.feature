@trust @requires-writes-allowed
Feature: Only the role's own ServiceAccount, with a genuine and current token, can assume the role
  The role of team "sample" trusts one subject, `system:serviceaccount:<its namespace>:s3-manager`,
  with the audience the webhook puts into tokens. Everything else must be refused: a ServiceAccount
  of another namespace, another ServiceAccount of the same namespace (both annotated with the role
  ARN, so the webhook gives their pods the role and a valid token), a token for another audience,
  a token signed by a key the cluster does not publish, an expired token.

  Two kinds of scenarios:
  - behaviour: STS itself is asked (from the pod, or by the harness with the token). They need a
    target that validates tokens and evaluates trust policies (tags requires-validates-tokens and
    requires-evaluates-trust-policies) and are skipped, with the probe's reason, where it does not
    (LocalStack accepts any token for any role; the embedded target's STS checks as AWS does);
  - diagnosis, on every target: the role's trust policy as IAM has it, evaluated for the token's
    claims (support/policy/simulate.ts, naming the condition that refuses), and the token checked
    against the published discovery documents and the identity provider the way STS checks it
    (support/diagnose/token.ts, naming the first check that fails).
  Tokens come from the TokenRequest API. The API server issues nothing shorter than 600 s, so an
  expired token is either forged (re-signed by a key generated here, which STS must refuse for its
  signature or for its expiry, whichever it checks first) or a genuine one diagnosed with a clock
  moved past its exp.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"

  @requires-runs-pods @requires-exec-into-pods @requires-evaluates-trust-policies
  Scenario: A ServiceAccount of another namespace, annotated with the role ARN, cannot assume the role
    Given team "intruder" has deployed the sample app in its own namespace with a ServiceAccount "s3-manager" annotated with the role ARN of team "sample"
    Then the pod of team "intruder" cannot assume the role of team "sample"

  @requires-runs-pods @requires-exec-into-pods @requires-evaluates-trust-policies
  Scenario: Another ServiceAccount of the same namespace, annotated with the role ARN, cannot assume the role
    Given team "sample" has deployed the sample app with its ServiceAccount annotated with the role ARN
    And team "neighbour" has deployed the sample app in the namespace of team "sample" with a ServiceAccount "other-app" annotated with the role ARN of team "sample"
    When the pod of team "sample" runs "aws sts get-caller-identity --output json"
    Then the command succeeds
    And the caller is a session of the role of team "sample"
    And the pod of team "neighbour" cannot assume the role of team "sample"

  Scenario: The trust policy names the condition that refuses a ServiceAccount of another namespace
    Given team "sample" has its namespace and its ServiceAccount
    And team "intruder" has a ServiceAccount "s3-manager" in its own namespace
    When team "sample" gets a genuine token with the audience the webhook puts into tokens
    And team "intruder" gets a genuine token with the audience the webhook puts into tokens
    Then the role's trust policy admits the token of team "sample"
    And the trust policy of team "sample" refuses the token of team "intruder" on its "sub" condition

  Scenario: The trust policy names the condition that refuses another ServiceAccount of the same namespace
    Given team "sample" has its namespace and its ServiceAccount
    And team "neighbour" has a ServiceAccount "other-app" in the namespace of team "sample"
    When team "sample" gets a genuine token with the audience the webhook puts into tokens
    And team "neighbour" gets a genuine token with the audience the webhook puts into tokens
    Then the role's trust policy admits the token of team "sample"
    And the trust policy of team "sample" refuses the token of team "neighbour" on its "sub" condition

  Scenario: The trust policy names the condition that refuses a token for another audience
    Given team "sample" has its namespace and its ServiceAccount
    When team "sample" gets a token for the audience "not-sts.example.com"
    Then the trust policy of team "sample" refuses the token of team "sample" on its "aud" condition

  Scenario Outline: The token diagnosis names why STS refuses <token>
    Given team "sample" has its namespace and its ServiceAccount
    When team "sample" gets <token>
    Then the token diagnosis of team "sample" fails only at "<check>"

    Examples:
      | token                                                                             | check                      |
      | a token for the audience "not-sts.example.com"                                    | audience-in-idp-client-ids |
      | a token forged with a freshly generated key under the cluster's kid               | signature                  |
      | a token forged with a freshly generated key under a kid keys.json does not list   | key-for-kid                |
      | a genuine token of 600 s, diagnosed 60 s after it expired                         | not-expired                |

  @requires-validates-tokens
  Scenario Outline: STS refuses <token>
    Given team "sample" has its namespace and its ServiceAccount
    When team "sample" gets a genuine token with the audience the webhook puts into tokens
    Then STS accepts the token of team "sample" for the role of team "sample"
    When team "sample" gets <token>
    Then STS refuses the token of team "sample" for the role of team "sample" with "<error>"

    Examples:
      | token                                                                                 | error                                           |
      | a token for the audience "not-sts.example.com"                                        | InvalidIdentityToken                            |
      | a token forged with a freshly generated key under the cluster's kid                   | InvalidIdentityToken                            |
      | a token forged with a freshly generated key under a kid keys.json does not list       | InvalidIdentityToken                            |
      | a token forged with a freshly generated key under the cluster's kid that expired an hour ago | ExpiredTokenException or InvalidIdentityToken |
