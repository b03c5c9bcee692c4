@infrastructure
Feature: The infrastructure team makes IAM roles for service accounts available
  AWS STS must be able to verify the cluster's service-account tokens: a public OIDC discovery
  document and JWKS in an S3 bucket, an IAM OIDC identity provider for the same URL, the cluster's
  issuer set to that URL, and the pod identity webhook injecting tokens into annotated pods.
  The set-up runs once per run, from the setup description (fixtures/setups/default unless
  IRSA_SETUP names another); each scenario checks one thing of it.

  Background:
    Given the infrastructure team has set up IRSA for the cluster as the setup description says

  Scenario: The target's capabilities are measured, not assumed
    Then the capability matrix of the target is attached to the report

  Scenario: keys.json holds the cluster's signing keys
    Then keys.json holds every current signing key of the cluster, as an RS256 key with the kid the cluster puts in its tokens

  Scenario: The discovery document has the fields STS reads
    Then the discovery document names the issuer, a jwks_uri under it, and the fields STS needs

  Scenario: The discovery documents are public
    Then an anonymous GET of ".well-known/openid-configuration" returns the published discovery document
    And an anonymous GET of "keys.json" returns the published JWKS

  Scenario: One issuer, the same string everywhere
    Then the issuer in the discovery document, the cluster's service-account issuer and the identity provider URL are the same string

  Scenario: The identity provider accepts the tokens' audience
    Then the identity provider lists the client ID "sts.amazonaws.com"
    And the identity provider lists the audience the webhook puts into tokens

  Scenario: The pod identity webhook is serving and registered for pod CREATE
    Then a mutating webhook for pod CREATE is registered for the pod identity webhook
    And the pod identity webhook is serving
    And the webhook configuration passes the pre-flight checks
