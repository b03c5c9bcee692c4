Feature: An application team's pod uses its own IAM role, and only it
  The application team creates an app bucket, a least-privilege policy, a role whose trust policy
  admits only its ServiceAccount, the namespace, the ServiceAccount annotated with the role ARN,
  and the sample Deployment. The webhook injects the role and a projected token into the pod;
  inside the pod the AWS CLI assumes the role, writes to the app bucket, and is denied elsewhere.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"
    And team "sample" has deployed the sample app with its ServiceAccount annotated with the role ARN

  @requires-runs-pods
  Scenario: The webhook injects the role and the token into the pod
    Then the pod of team "sample" is Running
    And every container of the pod of team "sample" has AWS_ROLE_ARN set to the team's role ARN and AWS_WEB_IDENTITY_TOKEN_FILE set to the token path
    And the pod of team "sample" has the projected token volume "aws-iam-token" with audience "sts.amazonaws.com", expiration 86400 s and path "token"
    And every container of the pod of team "sample" mounts "aws-iam-token" read-only at "/var/run/secrets/eks.amazonaws.com/serviceaccount"

  @requires-runs-pods @requires-exec-into-pods
  Scenario: Inside the pod, the token is there and says which ServiceAccount the pod runs as
    When the pod of team "sample" is Running
    Then inside the pod of team "sample" the environment has AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE
    And inside the pod of team "sample" the token file is readable
    And the token of team "sample" has iss equal to the cluster's issuer, aud "sts.amazonaws.com", the sub of its ServiceAccount and a lifetime of 86400 s
    And the token of team "sample" verifies against the published discovery documents and the identity provider, as STS checks it
    And the role's trust policy admits the token of team "sample"

  @requires-runs-pods @requires-exec-into-pods
  Scenario: From inside the pod, the AWS CLI assumes the role and uses the app bucket
    When the pod of team "sample" runs "aws sts get-caller-identity --output json"
    Then the command succeeds
    And the caller is a session of the role of team "sample"
    When the pod of team "sample" runs "aws s3 ls"
    Then the command succeeds
    And the output lists the app bucket of team "sample"
    When the pod of team "sample" uploads "ocp-validation.txt" to the app bucket of team "sample"
    Then the command succeeds
    And "ocp-validation.txt" in the app bucket of team "sample" holds what the pod wrote

  @requires-runs-pods @requires-exec-into-pods @requires-enforces-iam
  Scenario: Writing to another bucket is denied
    Given another bucket "not-ours" that team "sample" has no permission for
    When the pod of team "sample" uploads "ocp-validation.txt" to the bucket "not-ours"
    Then the command fails with AccessDenied
    And the permission policy of team "sample" explains the denial of s3:PutObject on the bucket "not-ours"

  Scenario: The role follows least privilege
    Then the trust policy of team "sample" admits only its own ServiceAccount
    And the permission policy of team "sample" grants object access only inside its app bucket
