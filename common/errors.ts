/**
 * The error catalog: every error Maxine answers with has a stable code, an HTTP status and a
 * message template here, and nowhere else. Clients match on `code`; the message is for people.
 */
export const ERROR_CATALOG = {
  VALIDATION_FAILED: { status: 400, message: 'The request is invalid' },
  MALFORMED_JSON: { status: 400, message: 'The request body is not valid JSON' },
  HASH_KEY_REQUIRED: { status: 400, message: 'This strategy needs a key' },
  UNAUTHENTICATED: { status: 401, message: 'Authentication is required' },
  FORBIDDEN: { status: 403, message: 'Not allowed' },
  SERVICE_BLOCKED: { status: 403, message: 'The service is blocked' },
  SOURCE_MISMATCH: {
    status: 403,
    message: "x-maxine-source names a service that is not the caller's own",
  },
  SOURCE_REQUIRED: { status: 403, message: 'A source identity is required' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No such endpoint' },
  SERVICE_NOT_FOUND: { status: 404, message: 'No such service' },
  SERVICE_NOT_DECLARED: { status: 404, message: 'The service is not declared' },
  OUTSIDE_DISCOVERY_SCOPE: {
    status: 404,
    message: "The service is outside the pod's discovery scope (maxine.io/discovery-scope)",
  },
  INSTANCE_NOT_FOUND: { status: 404, message: 'No such instance' },
  NO_HEALTHY_INSTANCE: { status: 404, message: 'The service has no healthy instance' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  INSTANCE_CONFLICT: { status: 409, message: 'The instance id belongs to another service' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request did not arrive in time' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  METADATA_TOO_LARGE: { status: 413, message: "The instance's metadata is too large" },
  TOO_MANY_PORTS: { status: 413, message: 'The instance has too many ports' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  UPGRADE_REQUIRED: { status: 426, message: 'This endpoint speaks WebSocket' },
  RATE_LIMITED: { status: 429, message: 'Too many requests' },
  LIMIT_EXCEEDED: { status: 429, message: 'A registry limit is reached' },
  TOO_MANY_STREAMS: { status: 429, message: 'Too many open event streams for this caller' },
  INTERNAL: { status: 500, message: 'Internal error' },
  NOT_READY: { status: 503, message: 'Not ready' },
  EVENT_STREAMS_FULL: { status: 503, message: 'The operator serves all the event streams it may' },
  MESH_NOT_READY: { status: 503, message: 'The mesh configuration is not known yet' },
  NO_LEADER: {
    status: 503,
    message: 'No leader can take this write now (none known, or it cannot be reached)',
  },
  CONFIG_WAITERS_FULL: {
    status: 503,
    message: 'The sidecar holds all the config long-polls it may',
  },
  // The sidecar's outbound proxy (sidecar/proxy/, docs/sidecar.md "Calling other services").
  PROXY_BAD_DESTINATION: { status: 400, message: 'The proxy destination is malformed' },
  AMBIGUOUS_MESSAGE_LENGTH: {
    status: 400,
    message: 'The request framing is ambiguous (Transfer-Encoding with Content-Length)',
  },
  MALFORMED_REQUEST: { status: 400, message: 'The request is not valid HTTP/1.1' },
  INTENTION_DENIED: { status: 403, message: 'An intention forbids this call' },
  CONNECT_NOT_SUPPORTED: { status: 405, message: 'The forward proxy does not tunnel (CONNECT)' },
  HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large' },
  UNKNOWN_PROXY_HOST: { status: 502, message: 'The host is not a Maxine service' },
  UPSTREAM_CONNECT_FAILED: { status: 502, message: 'The upstream instance refused the connection' },
  UPSTREAM_RESET: { status: 502, message: 'The upstream instance reset the connection' },
  NO_UPSTREAM_INSTANCE: { status: 503, message: 'The service has no healthy instance to call' },
  CIRCUIT_OPEN: { status: 503, message: "Every instance's circuit is open" },
  UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream instance did not answer in time' },
  CALL_TIMEOUT: { status: 504, message: 'The call took longer than requestTimeoutSeconds' },
  REGISTRATION_NOT_SAVED: {
    status: 503,
    message: 'The API server did not store the registration change; retry',
  },
  STORE_UNAVAILABLE: {
    status: 503,
    message: 'The registry store cannot be written; the change is not durable',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class MaxineError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    // Catalog errors are answers, not bugs: no stack trace (capturing one costs ~10 µs on the
    // discovery hot path, where "no healthy instance" can be every answer during an outage).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? ERROR_CATALOG[code].message);
    Error.stackTraceLimit = limit;
    this.name = 'MaxineError';
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.details = details;
  }

  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

/** A validation issue as clients see it: where (dotted path) and what. */
export interface Issue {
  path: string;
  message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

export function issuesOf(error: {
  issues: readonly { path: readonly PropertyKey[]; message: string }[];
}): Issue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

export function validationError(
  where: string,
  error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] },
): MaxineError {
  const issues = issuesOf(error);
  const first = issues[0];
  const summary =
    first === undefined
      ? 'invalid'
      : first.path === ''
        ? first.message
        : `${first.path}: ${first.message}`;
  return new MaxineError('VALIDATION_FAILED', `Invalid ${where}: ${summary}`, { issues });
}
