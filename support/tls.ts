/**
 * A small certificate authority for one harness environment: its CA, the serving certificates of
 * the local components (kube-apiserver, the AWS emulator, the pod identity webhook, kwok) and the
 * client certificates the Kubernetes components authenticate with.
 *
 * Everything is returned as PEM strings so that a target can write the files its components read
 * and hand the CA to clients (the webhook's caBundle, AWS_CA_BUNDLE). Keys are ECDSA P-256: they
 * are generated in milliseconds, and every component involved (Go, Python's ssl, Node) accepts them.
 * Private keys are secrets: callers write them to 0600 files and never print them.
 */
import './reflect-metadata-shim.ts';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALGORITHM: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
/** Certificates are backdated so that a clock a little behind ours still accepts them. */
const BACKDATE_MS = 60 * 60 * 1000;
const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

export interface CertificateAuthority {
  name: string;
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export interface ServingCertOptions {
  ipSans?: string[];
  dnsSans?: string[];
  /** Defaults to the first SAN. */
  commonName?: string;
}

export interface ClientCertOptions {
  /** Kubernetes reads the user name from the CN. */
  commonName: string;
  /** Kubernetes reads groups from the O attributes (e.g. system:masters). */
  organizations?: string[];
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importCaKey(ca: CertificateAuthority): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(ca.keyPem);
  return (await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign'])) as unknown as CryptoKey;
}

/** RFC 4514 escaping is not needed for the names used here; reject anything that would need it. */
function rdn(attr: string, value: string): string {
  if (/[,+="\\<>;#]/.test(value)) throw new Error(`certificate name ${attr}=${value} contains a special character`);
  return `${attr}=${value}`;
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + VALIDITY_MS) };
}

export async function createCa(name: string): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: rdn('CN', name),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

async function issue(
  ca: CertificateAuthority,
  subject: string,
  usage: x509.ExtendedKeyUsage[],
  extra: x509.Extension[],
): Promise<IssuedCertificate> {
  const [keys, caKey] = await Promise.all([generateKeys(), importCaKey(ca)]);
  const caCert = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: caCert.subject,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usage),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      ...extra,
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * A serving certificate with the given SANs (Go's TLS stack ignores the CN, so at least one SAN
 * is required). Also valid as a client certificate, which kwok's kubelet endpoint does not need
 * but which costs nothing.
 */
export async function issueServingCert(
  ca: CertificateAuthority,
  options: ServingCertOptions,
): Promise<IssuedCertificate> {
  const ipSans = options.ipSans ?? [];
  const dnsSans = options.dnsSans ?? [];
  const first = dnsSans[0] ?? ipSans[0];
  if (first === undefined) throw new Error('issueServingCert needs at least one IP or DNS SAN');
  const names: x509.JsonGeneralNames = [
    ...dnsSans.map((value) => ({ type: 'dns' as const, value })),
    ...ipSans.map((value) => ({ type: 'ip' as const, value })),
  ];
  return issue(
    ca,
    rdn('CN', options.commonName ?? first),
    [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    [new x509.SubjectAlternativeNameExtension(names)],
  );
}

/** A client certificate for Kubernetes' x509 authentication (CN = user, O = groups). */
export async function issueClientCert(
  ca: CertificateAuthority,
  options: ClientCertOptions,
): Promise<IssuedCertificate> {
  const subject = [rdn('CN', options.commonName), ...(options.organizations ?? []).map((o) => rdn('O', o))].join(', ');
  return issue(ca, subject, [x509.ExtendedKeyUsage.clientAuth], []);
}
