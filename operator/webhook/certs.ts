/**
 * The webhook's TLS material: a private CA (ECDSA P-256, 10 years) and a serving certificate it
 * signs for the Service's DNS names and any IPs (90 days by default). Everything stays in
 * memory: the operator makes a new CA when it starts and patches it into the webhook
 * configuration, so no key is ever written to disk or to the API server.
 */
import { randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

const DAY_MS = 86_400_000;
export const CA_VALIDITY_MS = 3650 * DAY_MS;
export const LEAF_VALIDITY_MS = 90 * DAY_MS;
/** notBefore is set this far back, so a peer whose clock is a little behind accepts the cert. */
const BACKDATE_MS = 5 * 60_000;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const crypto = webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends PemPair {
  notAfter: Date;
}

export interface ServingCertificate extends PemPair {
  /** The CA that signed it: what the API server must trust (`caBundle`). */
  caPem: string;
  notAfter: Date;
}

export interface CaOptions {
  commonName?: string;
  validityMs?: number;
  now?: Date;
}

export interface ServingCertOptions {
  ca: CertificateAuthority;
  dnsNames: readonly string[];
  ips?: readonly string[];
  validityMs?: number;
  now?: Date;
}

/** A positive 128-bit serial number, hex. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

function derOfPem(pem: string): Buffer {
  return Buffer.from(
    pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, ''),
    'base64',
  );
}

function newKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

export async function generateCa(options: CaOptions = {}): Promise<CertificateAuthority> {
  const now = options.now ?? new Date();
  const notAfter = new Date(now.getTime() + (options.validityMs ?? CA_VALIDITY_MS));
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: `CN=${options.commonName ?? 'maxine-webhook-ca'}, O=maxine.io`,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return {
    certPem: cert.toString('pem'),
    keyPem: await keyPem(keys.privateKey),
    notAfter: cert.notAfter,
  };
}

export async function generateServingCert(
  options: ServingCertOptions,
): Promise<ServingCertificate> {
  const { ca } = options;
  const names = [
    ...options.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...(options.ips ?? []).map((value) => {
      if (isIP(value) === 0) throw new Error(`"${value}" is not an IP address`);
      return { type: 'ip' as const, value };
    }),
  ];
  if (names.length === 0) throw new Error('a serving certificate needs a DNS name or an IP');
  const now = options.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.certPem);
  // A leaf never outlives its CA.
  const notAfter = new Date(
    Math.min(now.getTime() + (options.validityMs ?? LEAF_VALIDITY_MS), ca.notAfter.getTime()),
  );
  const caKey = await crypto.subtle.importKey('pkcs8', derOfPem(ca.keyPem), ALGORITHM, false, [
    'sign',
  ]);
  const keys = await newKeyPair();
  // The common name is informational (clients match SANs) and limited to 64 characters.
  const commonName = (options.dnsNames[0] ?? options.ips?.[0] ?? 'maxine-webhook').slice(0, 64);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=${commonName}`,
      issuer: caCert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
      ],
    },
    crypto,
  );
  return {
    certPem: cert.toString('pem'),
    keyPem: await keyPem(keys.privateKey),
    caPem: ca.certPem,
    notAfter: cert.notAfter,
  };
}

/** When a certificate stops being valid. */
export function expiryOf(certPem: string): Date {
  return new Date(new NodeX509(certPem).validTo);
}

/**
 * True when the certificate expires within `renewBeforeMs` of `now` (or already has), or cannot
 * be read at all: either way it must be replaced.
 */
export function needsRenewal(certPem: string, now: Date | number, renewBeforeMs: number): boolean {
  let expiry: number;
  try {
    expiry = expiryOf(certPem).getTime();
  } catch {
    return true;
  }
  return Number.isNaN(expiry) || new Date(now).getTime() + renewBeforeMs >= expiry;
}
