@webhook-failure @requires-writes-allowed
Feature: A pod identity webhook that cannot answer does not go unnoticed
  With failurePolicy Ignore (OpenShift's built-in webhook, the article's, and this harness's
  default setup use it), kube-apiserver admits a pod unmutated when the webhook's call fails, and
  tells nobody: the pod simply runs without AWS credentials (irsa-facts §5.1, §5.4). Two ways the
  call fails: the webhook is unreachable (down, no endpoints, wrong Service), or its answers are
  rejected because the configuration lists admissionReviewVersions v1 first for a webhook release
  that answers without apiVersion/kind (v0.6.17 and older: the admission version trap).

  The scenarios simulate both without touching the real configuration: each registers, in its own
  ledger scope, a copy of the pod identity webhook configuration that intercepts only pods carrying
  the scenario's label, and creates a pod that the real configuration lets through by its own
  opt-out (upstream's objectSelector skips pods labelled eks.amazonaws.com/skip-pod-identity-webhook).
  The ServiceAccount is annotated, and a dry-run pod shows the real webhook mutates its pods. That
  kube-apiserver called the copy and failed open is read from its fail-open counter
  (apiserver_admission_webhook_fail_open_count on /metrics); the suite's diagnosis then names the
  configuration, its failurePolicy and why its webhook could not answer.
  Where the real configuration has no opt-out, /metrics is not readable, or the webhook release
  answers v1, the scenario is skipped with that reason.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"

  Scenario: With its webhook unreachable and failurePolicy Ignore, a new pod is admitted unmutated, and the diagnosis says why
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN
    And a copy of the pod identity webhook configuration, with failurePolicy Ignore and a webhook Service that does not exist, intercepts the pods labelled for this scenario
    When team "sample" creates a pod of the sample app labelled for this scenario and opted out of the pod identity webhook configuration
    Then the pod of team "sample" is admitted without AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the token volume "aws-iam-token"
    And the diagnosis of the pod of team "sample" names the copy, failurePolicy Ignore and "does not exist"

  Scenario: With admission review v1 listed first and failurePolicy Ignore, the webhook's answers are rejected and a new pod is admitted unmutated
    Given team "sample" has its namespace and its ServiceAccount annotated with the role ARN
    And a copy of the pod identity webhook configuration, with failurePolicy Ignore and admissionReviewVersions "v1, v1beta1", intercepts the pods labelled for this scenario
    When team "sample" creates a pod of the sample app labelled for this scenario and opted out of the pod identity webhook configuration
    Then the pod of team "sample" is admitted without AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the token volume "aws-iam-token"
    And the diagnosis of the pod of team "sample" names the copy, failurePolicy Ignore and "admission version trap"

  Scenario: The pre-flight refuses a configuration that lists admission review v1 first with failurePolicy Ignore
    Given a copy of the pod identity webhook configuration, with failurePolicy Ignore and admissionReviewVersions "v1, v1beta1", intercepts the pods labelled for this scenario
    Then the pre-flight of the copy fails with the admission version trap for the webhook release the target runs
