import { z } from 'zod';

/** Kubernetes DNS-1123 label: service names, namespaces, version names. */
export const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL_RE, 'must be a DNS-1123 label: lower-case letters, digits and "-"');

/** A service named `namespace/name`, both DNS-1123 labels; parsed into its two parts. */
export const serviceRefString = z
  .string()
  .max(127)
  .refine((v) => {
    const [namespace, name, extra] = v.split('/');
    return (
      extra === undefined &&
      dnsLabel.safeParse(namespace).success &&
      dnsLabel.safeParse(name).success
    );
  }, 'must be "namespace/name"')
  .transform((v) => {
    const [namespace, name] = v.split('/') as [string, string];
    return { namespace, name };
  });

/** DNS-1123 subdomain (ServiceAccount names, hosts given by name). */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a DNS-1123 subdomain',
  );

/** Label and metadata keys: an optional DNS prefix and a name, as Kubernetes label keys. */
export const labelKey = z
  .string()
  .min(1)
  .max(317)
  .regex(
    /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/,
    'must be a label key such as "app" or "example.com/tier"',
  );
export const labelValue = z
  .string()
  .max(63)
  .regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/, 'must be a valid label value');

export const labelMap = z.record(labelKey, labelValue);

/** A service reference key `namespace/name`, the registry's primary key. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
