@identity-chain
Feature: Nobody but the owner can change what STS trusts
  STS accepts a service-account token for a role when the token's issuer has an IAM OIDC identity
  provider, the token's audience is one of its client IDs, a key in the keys.json the issuer's
  discovery document points at verifies its signature, and the role's trust policy admits its
  subject. The other features check that this chain works. These check that nobody else can use it:
  whoever can replace keys.json (or the discovery document that names it), whose key keys.json
  also holds, or whose tokens carry a client ID the provider lists for no reason, can sign or
  bring tokens that STS accepts for every role that trusts the provider; and a role any
  ServiceAccount of the cluster can satisfy (02-application.feature and 07-least-privilege-profiles
  .feature fail it in every profile) hands itself to whoever may create a pod.

  The discovery bucket is checked two ways:
  - tried, where the harness may write: an anonymous caller, then an IAM user of the account
    without any permissions, attempt every change of the bucket and its two documents (write,
    delete, ACL, bucket policy, Block Public Access, Object Ownership, deleting the bucket) and each
    must be refused with AccessDenied. Every attempt carries what the bucket already has, and what
    a successful one removed is put back at once, so nothing is left changed;
  - evaluated, on every target (verify-only included, without writing): the bucket policy with
    the iam-simulate library, the ACLs by S3's rules, with Block Public Access and Object
    Ownership, for an anonymous caller, a principal of the account without permissions, another
    account and every account the policy names.
  Both name the statement or the ACL grant that lets someone else in.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says

  @requires-writes-allowed @requires-enforces-iam
  Scenario: Nobody but the owner can change the discovery bucket or its documents, tried
    When an anonymous caller tries every change to the discovery bucket and its two documents
    And an IAM user of the account without permissions tries every change to the discovery bucket and its two documents
    Then S3 refuses every one of these changes with AccessDenied
    And the discovery bucket and its two documents are as they were before

  @infrastructure
  Scenario: Nobody but the owner can change the discovery bucket or its documents, by its policy, ACLs and Block Public Access
    Then the policy, ACLs and Block Public Access of the discovery bucket let no caller but the owner change it or its two documents

  @infrastructure
  Scenario: keys.json holds no key the cluster does not sign with
    Then every key in keys.json is one the cluster signs tokens with or publishes

  @infrastructure
  Scenario: The identity provider accepts only the audiences in use
    Then the identity provider's client IDs are the audiences the webhook and the setup put into tokens, and no other
