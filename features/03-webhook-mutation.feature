@mutation @requires-writes-allowed
Feature: The webhook mutates exactly the pods it should, the way upstream does
  The pod identity webhook decides at admission, from the pod's ServiceAccount as its cache knows
  it, whether and how to mutate a pod (amazon-eks-pod-identity-webhook v0.6.17, pkg/handler and
  pkg/cache; the expected patches are upstream's pkg/handler/testdata/*.pod.yaml):
  - no `<prefix>/role-arn` annotation on the ServiceAccount: the pod is admitted unchanged;
  - `<prefix>/audience` on the ServiceAccount replaces the token volume's audience;
  - `<prefix>/token-expiration` on the ServiceAccount or on the pod (the pod's wins) sets the token
    volume's expirationSeconds; values below 600 are raised to 600, values that are not integers
    are ignored;
  - `<prefix>/sts-regional-endpoints` on the ServiceAccount, parsed as a Go boolean ("true", "1", "t"…):
    true adds AWS_STS_REGIONAL_ENDPOINTS=regional to every mutated container;
  - `<prefix>/skip-containers` on the pod (a comma-separated list): those containers get neither env
    nor mount, but the pod still gets the token volume;
  - a container that already sets AWS_ROLE_ARN or AWS_WEB_IDENTITY_TOKEN_FILE gets neither variable
    from the webhook, but still gets the mount (unless it also sets a region variable and
    AWS_STS_REGIONAL_ENDPOINTS);
  - init containers are mutated like containers.
  Pods are created directly from the sample app's template or a fixture (fixtures/pods/), after a
  dry-run create has shown that the webhook's ServiceAccount cache knows the annotation. What is
  checked is the pod as the API server stored it, so these scenarios need no running pods.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"

  Scenario: A pod whose ServiceAccount has no role annotation is not mutated
    Given team "sample" has deployed the sample app with a ServiceAccount that has no role annotation
    Then the pod of team "sample" is admitted without AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the token volume "aws-iam-token"

  @requires-runs-pods @requires-exec-into-pods
  Scenario: Inside a pod whose ServiceAccount has no role annotation, the AWS default credential chain finds no web-identity credentials
    Given team "sample" has deployed the sample app with a ServiceAccount that has no role annotation
    Then inside the pod of team "sample" the AWS default credential chain finds no web-identity credentials

  Scenario Outline: The ServiceAccount annotation "audience" sets the audience of the token volume
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN and "audience" set to "<audience>"
    When team "sample" creates a pod of the sample app
    Then the pod of team "sample" has the projected token volume "aws-iam-token" with audience "<audience>", expiration 86400 s and path "token"

    Examples:
      | audience                   |
      | sts.amazonaws.com          |
      | irsa-conformance.example   |

  Scenario Outline: The ServiceAccount annotation "token-expiration" <value> gives tokens of <seconds> s
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN and "token-expiration" set to "<value>"
    When team "sample" creates a pod of the sample app
    Then the pod of team "sample" has the projected token volume "aws-iam-token" with audience "sts.amazonaws.com", expiration <seconds> s and path "token"

    Examples:
      | value    | seconds | why                                     |
      | 3600     | 3600    | kept                                    |
      | 600      | 600     | the minimum, kept                       |
      | 300      | 600     | below the minimum: raised to 600        |
      | one-hour | 86400   | not an integer: ignored, default stays  |

  Scenario Outline: The pod annotation "token-expiration" <value> wins over the ServiceAccount's 3600
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN and "token-expiration" set to "3600"
    When team "sample" creates a pod of the sample app with the pod annotation "token-expiration" set to "<value>"
    Then the pod of team "sample" has the projected token volume "aws-iam-token" with audience "sts.amazonaws.com", expiration <seconds> s and path "token"

    Examples:
      | value    | seconds | why                                                  |
      | 7200     | 7200    | the pod's value wins                                 |
      | 100      | 600     | below the minimum: raised to 600                     |
      | one-hour | 3600    | not an integer: ignored, the ServiceAccount's stays  |

  Scenario Outline: The ServiceAccount annotation "sts-regional-endpoints" "<value>" leaves AWS_STS_REGIONAL_ENDPOINTS <result>
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN and "sts-regional-endpoints" set to "<value>"
    When team "sample" creates a pod of the sample app
    Then every container of the pod of team "sample" has AWS_STS_REGIONAL_ENDPOINTS <result>

    Examples:
      | value | result                 |
      | true  | set to "regional"      |
      | 1     | set to "regional"      |
      | false | unset                  |
      | yes   | unset                  |

  Scenario: The pod annotation "skip-containers" leaves the listed container alone
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN
    When team "sample" creates the pod "two-containers" with the pod annotation "skip-containers" set to "sidecar"
    Then container "aws-cli" of the pod of team "sample" has AWS_ROLE_ARN set to the team's role ARN and mounts "aws-iam-token"
    And container "sidecar" of the pod of team "sample" has neither AWS_ROLE_ARN nor AWS_WEB_IDENTITY_TOKEN_FILE, and does not mount "aws-iam-token"
    And the pod of team "sample" has the volume "aws-iam-token"

  Scenario: A container that sets AWS_ROLE_ARN itself keeps its own value
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN
    When team "sample" creates the pod "own-role-arn"
    Then container "aws-cli" of the pod of team "sample" keeps AWS_ROLE_ARN "arn:aws:iam::111122223333:role/chosen-by-the-app" and gets no AWS_WEB_IDENTITY_TOKEN_FILE
    And container "aws-cli" of the pod of team "sample" mounts "aws-iam-token" read-only at the webhook's mount path

  Scenario: Init containers get the mount and the env too
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN
    When team "sample" creates the pod "init-container"
    Then the pod of team "sample" has the init container "prepare"
    And every container of the pod of team "sample" has AWS_ROLE_ARN set to the team's role ARN and AWS_WEB_IDENTITY_TOKEN_FILE set to the token path
    And every container of the pod of team "sample" mounts "aws-iam-token" read-only at "/var/run/secrets/eks.amazonaws.com/serviceaccount"

  Scenario: A pod created before its ServiceAccount was annotated stays unmutated until it is recreated
    The webhook acts at admission only: annotating a ServiceAccount (or changing its annotation)
    changes nothing for pods that already exist. Restart rule: after annotating a ServiceAccount,
    restart the workloads that use it (`kubectl rollout restart deployment/<name>`); until then their
    pods run without the role.

    Given team "sample" has deployed the sample app with a ServiceAccount that has no role annotation
    And the pod of team "sample" is admitted without AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the token volume "aws-iam-token"
    When the ServiceAccount of team "sample" is annotated with the role ARN
    Then the webhook mutates new pods of the ServiceAccount of team "sample"
    And the pod of team "sample" created before the annotation is still without AWS_ROLE_ARN
    When the sample app of team "sample" is restarted
    Then every container of the pod of team "sample" has AWS_ROLE_ARN set to the team's role ARN and AWS_WEB_IDENTITY_TOKEN_FILE set to the token path
    And the pod of team "sample" has the projected token volume "aws-iam-token" with audience "sts.amazonaws.com", expiration 86400 s and path "token"
