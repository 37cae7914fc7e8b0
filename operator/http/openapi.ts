/** The OpenAPI 3 document of the operator API, built from the same zod schemas that parse requests. */
import { z } from 'zod';
import { ERROR_CATALOG } from '../../common/errors.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { configHistoryResponseSchema } from '../../common/config-history.js';
import {
  callReportSchema,
  circuitChangeDataSchema,
  eventTypeSchema,
  heartbeatRequestSchema,
  instanceSchema,
  registerRequestSchema,
  HEALTH_STATUSES,
} from '../../common/wire.js';
import { STRATEGIES } from '../../common/resources.js';

const toSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' });

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (schema: object) => ({ content: { 'application/json': { schema } } });
const errorResponse = (description: string) => ({ description, ...jsonBody(ref('Error')) });
const pathParam = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
});
const queryParam = (name: string, description: string, schema: object = { type: 'string' }) => ({
  name,
  in: 'query',
  required: false,
  description,
  schema,
});

export function buildOpenApi(version: string): unknown {
  const serviceParams = [
    pathParam('namespace', 'Namespace of the service'),
    pathParam('name', 'Name of the service'),
  ];
  return {
    openapi: '3.0.3',
    info: {
      title: 'Maxine operator API',
      version,
      description:
        'Service registry: registration, heartbeats, discovery and the event stream. See docs/api.md.',
    },
    paths: {
      '/api/v1/instances': {
        post: {
          summary: 'Register an instance (re-registering the same id or host:port renews it)',
          requestBody: { required: true, ...jsonBody(ref('RegisterRequest')) },
          responses: {
            201: {
              description: 'Registered',
              ...jsonBody({ type: 'object', properties: { instance: ref('Instance') } }),
            },
            200: {
              description: 'Renewed',
              ...jsonBody({ type: 'object', properties: { instance: ref('Instance') } }),
            },
            400: errorResponse('Invalid body'),
            403: errorResponse('Registration blocked'),
            404: errorResponse('Service not declared (undeclared registration is off)'),
            409: errorResponse('The id belongs to another service'),
            413: errorResponse(
              'Body too large (BODY_TOO_LARGE), or metadata or ports over their limits (METADATA_TOO_LARGE, TOO_MANY_PORTS)',
            ),
            415: errorResponse('Body is not JSON'),
            429: errorResponse(
              'A registry limit is reached (LIMIT_EXCEEDED: instances in total, per service or per caller; undeclared services)',
            ),
            503: errorResponse(
              'Kubernetes mode: the API server did not store it (REGISTRATION_NOT_SAVED); nothing registered, retry',
            ),
          },
        },
      },
      '/api/v1/instances/{id}': {
        get: {
          summary: 'One instance',
          parameters: [pathParam('id', 'Instance id')],
          responses: {
            200: { description: 'The instance' },
            404: errorResponse('Unknown instance'),
          },
        },
        delete: {
          summary: 'Deregister',
          parameters: [pathParam('id', 'Instance id')],
          responses: {
            204: { description: 'Deregistered' },
            404: errorResponse('Unknown instance'),
            503: errorResponse(
              'Kubernetes mode: the API server did not delete it (REGISTRATION_NOT_SAVED); still registered, retry',
            ),
          },
        },
      },
      '/api/v1/instances/{id}/heartbeat': {
        put: {
          summary: 'Renew the lease, optionally reporting check status',
          parameters: [pathParam('id', 'Instance id')],
          requestBody: { required: false, ...jsonBody(ref('HeartbeatRequest')) },
          responses: {
            200: {
              description: 'Renewed',
              ...jsonBody({ type: 'object', properties: { instance: ref('Instance') } }),
            },
            404: errorResponse('Unknown instance: register again'),
          },
        },
      },
      '/api/v1/services': {
        get: {
          summary: 'All services with instance counts',
          parameters: [queryParam('namespace', 'Only this namespace')],
          responses: { 200: { description: 'Services' }, 400: errorResponse('Invalid query') },
        },
      },
      '/api/v1/services/{namespace}/{name}': {
        get: {
          summary: 'A service, its spec and instances',
          parameters: serviceParams,
          responses: { 200: { description: 'The service' }, 404: errorResponse('Unknown service') },
        },
      },
      '/api/v1/services/{namespace}/{name}/config/history': {
        get: {
          summary: "The service's last config versions, newest first (Secret values never shown)",
          parameters: serviceParams,
          responses: {
            200: { description: 'The history', ...jsonBody(ref('ConfigHistory')) },
            403: errorResponse('No read right on the service'),
            404: errorResponse('Unknown service'),
          },
        },
      },
      '/api/v1/discover/{namespace}/{name}': {
        get: {
          summary: 'Pick a healthy instance (or all with all=true)',
          parameters: [
            ...serviceParams,
            queryParam('strategy', "Load-balancing strategy (default: the service's)", {
              type: 'string',
              enum: [...STRATEGIES],
            }),
            queryParam('key', 'Hash key for consistent-hash and rendezvous-hash'),
            queryParam('version', 'Only this version'),
            queryParam('zone', 'Only this zone'),
            queryParam('datacenter', 'Only this datacenter'),
            queryParam('localZone', "Caller's zone (locality-aware)"),
            queryParam('localDatacenter', "Caller's datacenter (locality-aware)"),
            queryParam('all', 'Return every healthy instance', {
              type: 'string',
              enum: ['true', 'false'],
            }),
          ],
          responses: {
            200: { description: '{"instance": ...} or {"instances": [...]}' },
            400: errorResponse('Invalid query, or a hash strategy without key'),
            403: errorResponse('Discovery blocked'),
            404: errorResponse('Unknown service or no healthy instance'),
          },
        },
      },
      '/api/v1/events': {
        get: {
          summary: 'Event stream: WebSocket, or Server-Sent Events with Accept: text/event-stream',
          parameters: [
            queryParam('services', 'Comma-separated namespace/name patterns ("*" allowed)'),
            queryParam('types', 'Comma-separated event types', { type: 'string' }),
            queryParam('since', 'Resume after this sequence number'),
            queryParam(
              'epoch',
              'The epoch of the log since was read from (maxine-stream-epoch); another one gets a snapshot',
              { type: 'string' },
            ),
            queryParam(
              'snapshot',
              'Start with a snapshot (resync_begin, resync_chunk…, resync_end)',
              {
                type: 'string',
                enum: ['true', 'false'],
              },
            ),
            queryParam(
              'follow',
              'false: send the replay (every held event without since) or the snapshot, then close',
              { type: 'string', enum: ['true', 'false'] },
            ),
            queryParam('version', 'Only events about instances of this version'),
            queryParam('zone', 'Only events about instances in this zone'),
            queryParam('datacenter', 'Only events about instances in this datacenter'),
            {
              ...queryParam('metadata', 'KEY=VALUE an instance must have; repeatable (all hold)'),
              schema: { type: 'array', items: { type: 'string' }, maxItems: 16 },
              style: 'form',
              explode: true,
            },
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description:
                'Server-Sent Events: the last id received (EPOCH:SEQ); resumes like since= and epoch=',
              schema: { type: 'string' },
            },
          ],
          responses: {
            101: { description: 'Switching to WebSocket' },
            200: {
              description: 'Server-Sent Events (Accept: text/event-stream)',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            400: errorResponse('Invalid query or Last-Event-ID'),
            401: errorResponse('No valid credential'),
            426: errorResponse('Neither a WebSocket request nor Accept: text/event-stream'),
            429: errorResponse('TOO_MANY_STREAMS: this principal has too many open streams'),
            503: errorResponse('EVENT_STREAMS_FULL: the operator serves all the streams it may'),
          },
        },
      },
      '/api/v1/resources': {
        get: {
          summary: 'Resources in force, their status, and files that failed validation',
          parameters: [queryParam('kind', 'MaxineService, MaxineIntention or MaxineACL')],
          responses: { 200: { description: 'Resources and problems' } },
        },
      },
      '/api/v1/intentions/check': {
        get: {
          summary: 'May a source service call a destination (with this method and path)?',
          description:
            'Needs read on the destination. Names the deciding intention and permission.',
          parameters: [
            { ...queryParam('source', 'Calling service, namespace/name'), required: true },
            { ...queryParam('destination', 'Called service, namespace/name'), required: true },
            queryParam(
              'method',
              'HTTP method of the call (an L7 check when method or path is given)',
            ),
            queryParam('path', 'Path of the call, starting with /'),
          ],
          responses: {
            200: { description: '{source, destination, request?, allowed, decidedBy, reason}' },
            400: errorResponse('Invalid query'),
            403: errorResponse('No read right on the destination'),
          },
        },
      },
      '/api/v1/audit': {
        get: {
          summary: 'The audit log for a time range, as NDJSON (admin on */* only)',
          parameters: [
            queryParam('from', 'RFC 3339 time, inclusive', { type: 'string', format: 'date-time' }),
            queryParam('to', 'RFC 3339 time, exclusive', { type: 'string', format: 'date-time' }),
          ],
          responses: {
            200: {
              description: 'One JSON record per line',
              content: { 'application/x-ndjson': {} },
            },
            403: errorResponse('Not an administrator'),
            404: errorResponse('The audit log is off'),
          },
        },
      },
      '/api/v1/reports': {
        post: {
          summary:
            "A sidecar's observed outbound calls and circuit transitions since its last report",
          description:
            'Only the sidecar of a pod the source service selects, or a principal with register on the source service, may report for it. Edges and transitions to services the registry does not know are ignored (counted); each transition becomes a circuit_state_changed event.',
          requestBody: { required: true, ...jsonBody(ref('CallReport')) },
          responses: {
            202: { description: '{accepted: {edges, circuits}, ignored, refused, throttled}' },
            400: errorResponse('Invalid report (VALIDATION_FAILED with the issues)'),
            403: errorResponse('The caller is not the source service (FORBIDDEN)'),
            413: errorResponse('Body too large'),
            415: errorResponse('Body is not JSON'),
          },
        },
      },
      '/api/v1/graph': {
        get: {
          summary: 'The dependency graph: declared, observed and allowed edges, cycles',
          description:
            'Only services the caller may read, and edges between them. Rates, error rates and latency percentiles over the last --graph-window-seconds.',
          parameters: [
            queryParam('namespace', 'Only nodes of this namespace and edges touching it'),
            queryParam('format', 'json (default) or dot (Graphviz)', {
              type: 'string',
              enum: ['json', 'dot'],
            }),
          ],
          responses: {
            200: {
              description: '{windowSeconds, nodes, edges, cycles, undeclared, denied}, or DOT text',
              content: { 'application/json': {}, 'text/vnd.graphviz': {} },
            },
            400: errorResponse('Invalid query'),
          },
        },
      },
      '/healthz': {
        get: { summary: 'Liveness', security: [], responses: { 200: { description: 'Alive' } } },
      },
      '/readyz': {
        get: {
          summary: 'Readiness',
          security: [],
          responses: { 200: { description: 'Ready' }, 503: errorResponse('Not ready') },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          description:
            'Open unless --metrics-auth is on (the default in kubernetes mode); then it needs a principal with read on */*.',
          security: [{}, { bearer: [] }],
          responses: {
            200: { description: 'Text exposition format' },
            401: errorResponse('--metrics-auth is on and no principal was resolved'),
            403: errorResponse('--metrics-auth is on and the principal may not read */*'),
          },
        },
      },
    },
    // Every /api path needs a bearer token unless the operator serves anonymous callers
    // (standalone's default); health and readiness never do, metrics only with --metrics-auth.
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            "A pod's projected ServiceAccount token (audience maxine.io), a JWT of the configured issuer, or a static token. See docs/security.md.",
        },
      },
      schemas: {
        RegisterRequest: toSchema(registerRequestSchema, 'input'),
        HeartbeatRequest: toSchema(heartbeatRequestSchema, 'input'),
        Instance: toSchema(instanceSchema, 'output'),
        ServiceSpec: toSchema(serviceSpecSchema, 'output'),
        ConfigHistory: toSchema(configHistoryResponseSchema, 'output'),
        EventType: toSchema(eventTypeSchema, 'output'),
        CallReport: toSchema(callReportSchema, 'input'),
        CircuitStateChangedData: toSchema(circuitChangeDataSchema, 'output'),
        HealthStatus: { type: 'string', enum: [...HEALTH_STATUSES] },
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string', enum: Object.keys(ERROR_CATALOG) },
                message: { type: 'string' },
                details: {},
              },
            },
          },
        },
      },
    },
  };
}
