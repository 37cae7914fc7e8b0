/**
 * MaxineRegistration: a registration from outside the cluster (a VM, another platform) as the
 * API server keeps it in Kubernetes mode (docs/decisions/0019). The leader writes it on
 * register, on health and lease transitions, and deletes it on deregister or expiry; every
 * replica mirrors it into its registry. This schema is the single source: the CRD
 * (crds/maxineregistrations.yaml) is generated from it, and what an informer reads back is
 * parsed with it, so a hand-edited object with bad fields is refused, never applied.
 */
import { z } from 'zod';
import { API_GROUP_VERSION, objectMetaSchema } from './resources.js';
import { dnsLabel } from './names.js';
import {
  healthStatusSchema,
  instanceIdSchema,
  metadataSchema,
  registerRequestSchema,
} from './wire.js';

const request = registerRequestSchema.shape;

export const registrationSpecSchema = z.strictObject({
  id: instanceIdSchema.describe(
    'The instance id; metadata.name derives from it (docs/api.md: registrations in Kubernetes).',
  ),
  service: dnsLabel.describe('The MaxineService (in this namespace) the instance belongs to.'),
  host: request.host.describe('IP address or DNS name of the instance.'),
  port: request.port.describe('Main port.'),
  ports: request.ports.describe('Named ports.'),
  version: request.version.describe('Version (canary splits of spec.versions).'),
  zone: request.zone.describe('Zone, for locality-aware discovery.'),
  datacenter: request.datacenter.describe('Datacenter, for discovery filters.'),
  weight: z.int().min(0).max(10000).describe('Weight for weighted strategies.'),
  metadata: metadataSchema.optional().describe('Free-form metadata, as registered.'),
  ttlSeconds: z
    .int()
    .min(1)
    .max(3600)
    .describe('Lease: the instance goes critical when no heartbeat arrives for this long.'),
  owner: z
    .string()
    .max(512)
    .optional()
    .describe('The principal whose registration created it (per-principal limits).'),
  registeredAt: z.iso.datetime().describe('When the instance was first registered.'),
});
export type RegistrationSpec = z.infer<typeof registrationSpecSchema>;

export const registrationStatusSchema = z.strictObject({
  health: healthStatusSchema.describe('The last reported check result.'),
  output: z.string().max(4096).optional().describe('Output of the last reported check.'),
  leaseLapsed: z
    .boolean()
    .describe('No heartbeat arrived within ttlSeconds (the instance is critical).'),
});
export type RegistrationStatus = z.infer<typeof registrationStatusSchema>;

export const maxineRegistrationSchema = z.object({
  apiVersion: z.literal(API_GROUP_VERSION),
  kind: z.literal('MaxineRegistration'),
  metadata: objectMetaSchema.extend({
    // Names derived from ids may be DNS-1123 subdomains (dots), longer than a label.
    name: z.string().min(1).max(253),
  }),
  spec: registrationSpecSchema,
  status: registrationStatusSchema.optional(),
});
export type MaxineRegistration = z.infer<typeof maxineRegistrationSchema>;

export const REGISTRATION_KIND = 'MaxineRegistration';
export const REGISTRATION_PLURAL = 'maxineregistrations';
