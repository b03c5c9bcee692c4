Feature: On a real node, the kubelet delivers the token into the container
  The webhook only writes a projected volume into the pod spec. A kubelet turns it into a file in
  the container: the token it requested for this very pod, behind a symlink into the volume's
  ..data directory (which it swaps when it refreshes the token), readable by the container's user
  when the pod's fsGroup allows it; and exec reaches the container through the kubelet. Only a
  real node can answer these: on an emulated one they are skipped with the probe's reason.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"

  @requires-runs-pods @requires-exec-into-pods @requires-real-node
  Scenario: The token file in the container is the kubelet's projection of a token for this pod
    Given team "sample" has deployed the sample app with its ServiceAccount annotated with the role ARN
    When the pod of team "sample" is Running
    Then inside the pod of team "sample" the token file is a symlink into the projected volume's ..data directory
    And inside the pod of team "sample" the token file is readable
    And the token of team "sample" is what a TokenRequest for its pod returns: the same issuer, subject, audience and lifetime, bound to the pod, its ServiceAccount and its node

  @requires-runs-pods @requires-exec-into-pods @requires-real-node
  Scenario: A container running as a non-root user reads the token and assumes the role
    Given team "sample" has deployed the sample app running as user 65534, with its ServiceAccount annotated with the role ARN
    Then inside the pod of team "sample" commands run as user 65534
    And inside the pod of team "sample" the token file is readable
    When the pod of team "sample" runs "aws sts get-caller-identity --output json"
    Then the command succeeds
    And the caller is a session of the role of team "sample"

  @requires-runs-pods @requires-exec-into-pods @requires-real-node
  Scenario: exec reaches the pod's container through the kubelet
    Given team "sample" has deployed the sample app with its ServiceAccount annotated with the role ARN
    When the pod of team "sample" is Running
    Then a command exec'd into the pod of team "sample" runs inside its container, whose first process is the container's command
