import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expiryOf, generateCa, generateServingCert, needsRenewal } from './certs.js';
import type { CertificateAuthority, ServingCertificate } from './certs.js';

const DAY = 86_400_000;
const DNS = [
  'maxine-operator.maxine-system.svc',
  'maxine-operator.maxine-system.svc.cluster.local',
];
const now = new Date('2030-01-01T00:00:00Z');

let ca: CertificateAuthority;
let leaf: ServingCertificate;

beforeAll(async () => {
  ca = await generateCa({ now });
  leaf = await generateServingCert({ ca, dnsNames: DNS, ips: ['127.0.0.1', '::1'], now });
});

describe('generateCa', () => {
  it('is a self-signed CA of ten years with a P-256 key', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.subject).toContain('CN=maxine-webhook-ca');
    expect(cert.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(expiryOf(ca.certPem).getTime()).toBe(now.getTime() + 3650 * DAY);
    expect(ca.notAfter.getTime()).toBe(now.getTime() + 3650 * DAY);
    expect(new Date(cert.validFrom).getTime()).toBeLessThan(now.getTime());
  });

  it('returns the private key as PKCS#8 PEM matching the certificate', () => {
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const fromKey = createPublicKey(createPrivateKey(ca.keyPem)).export({
      type: 'spki',
      format: 'der',
    });
    const fromCert = new X509Certificate(ca.certPem).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    expect(fromKey.equals(fromCert)).toBe(true);
  });

  it('makes a new key every time', async () => {
    const other = await generateCa();
    expect(other.keyPem).not.toBe(ca.keyPem);
  });
});

describe('generateServingCert', () => {
  it('is signed by the CA and is not itself a CA', () => {
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(leaf.caPem).toBe(ca.certPem);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  it('does not verify against another CA', async () => {
    const stranger = await generateCa();
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.verify(new X509Certificate(stranger.certPem).publicKey)).toBe(false);
  });

  it('carries every DNS name and IP as a SAN', () => {
    const cert = new X509Certificate(leaf.certPem);
    for (const name of DNS) expect(cert.checkHost(name)).toBe(name);
    expect(cert.checkHost('maxine-operator.other.svc')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkIP('10.0.0.1')).toBeUndefined();
    expect(cert.subjectAltName).toBe(
      `DNS:${DNS[0]}, DNS:${DNS[1]}, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`,
    );
  });

  it('is valid for 90 days by default, or as configured, and never past the CA', async () => {
    expect(expiryOf(leaf.certPem).getTime()).toBe(now.getTime() + 90 * DAY);
    const week = await generateServingCert({ ca, dnsNames: DNS, validityMs: 7 * DAY, now });
    expect(expiryOf(week.certPem).getTime()).toBe(now.getTime() + 7 * DAY);
    const shortCa = await generateCa({ now, validityMs: 30 * DAY });
    const clipped = await generateServingCert({ ca: shortCa, dnsNames: DNS, now });
    expect(expiryOf(clipped.certPem).getTime()).toBe(now.getTime() + 30 * DAY);
  });

  it('refuses a non-IP in ips and an empty name list', async () => {
    await expect(generateServingCert({ ca, dnsNames: [], ips: ['localhost'] })).rejects.toThrow(
      /not an IP/,
    );
    await expect(generateServingCert({ ca, dnsNames: [] })).rejects.toThrow(/needs a DNS name/);
  });
});

describe('needsRenewal', () => {
  const expiry = (): number => expiryOf(leaf.certPem).getTime();
  const renewBefore = 30 * DAY;

  it.each([
    ['long before the renewal window', -renewBefore - DAY, false],
    ['one second before the window', -renewBefore - 1000, false],
    ['exactly at the window start', -renewBefore, true],
    ['inside the window', -DAY, true],
    ['at expiry', 0, true],
    ['after expiry', DAY, true],
  ])('%s', (_name, offset, expected) => {
    expect(needsRenewal(leaf.certPem, expiry() + offset, renewBefore)).toBe(expected);
    expect(needsRenewal(leaf.certPem, new Date(expiry() + offset), renewBefore)).toBe(expected);
  });

  it('treats an unreadable certificate as due', () => {
    expect(needsRenewal('not a certificate', now, 0)).toBe(true);
  });
});
