/**
 * Where an outbound call goes (pure): the destination service of the path form
 * `/v1/proxy/{service}[.{namespace}]/{path...}` and of the forward-proxy form
 * `http://{service}[.{namespace}][:port]/{path...}`, and the path sent upstream. Service and
 * namespace are DNS-1123 labels, so a name with a dot is read as `service.namespace`; anything
 * else is refused before the call touches the local copy or an upstream.
 */
import { MaxineError } from '../../common/errors.js';
import { DNS_LABEL_RE } from '../../common/names.js';
import type { ServiceRef } from '../../common/wire.js';

export const PROXY_PREFIX = '/v1/proxy/';

export interface ProxyTarget {
  readonly destination: ServiceRef;
  /** Path and query sent upstream, always starting with `/`. */
  readonly path: string;
  /** The authority the app addressed (`orders.shop`), sent upstream as `Host`. */
  readonly authority: string;
}

/** `{service}` or `{service}.{namespace}`; undefined when it is neither. */
export function parseServiceName(name: string, defaultNamespace: string): ServiceRef | undefined {
  const dot = name.indexOf('.');
  const service = dot === -1 ? name : name.slice(0, dot);
  const namespace = dot === -1 ? defaultNamespace : name.slice(dot + 1);
  if (!isLabel(service) || !isLabel(namespace)) return undefined;
  return { namespace, name: service };
}

function isLabel(value: string): boolean {
  return value.length > 0 && value.length <= 63 && DNS_LABEL_RE.test(value);
}

/** The target of a path-form call (`url` starts with `/v1/proxy/`). */
export function parseProxyPath(url: string, defaultNamespace: string): ProxyTarget {
  const rest = url.slice(PROXY_PREFIX.length);
  const end = firstOf(rest, '/', '?');
  const name = end === -1 ? rest : rest.slice(0, end);
  const destination = parseServiceName(name, defaultNamespace);
  if (destination === undefined) {
    throw new MaxineError(
      'PROXY_BAD_DESTINATION',
      `"${printable(name)}" is not a service: use /v1/proxy/{service}[.{namespace}]/{path}, with DNS-1123 labels`,
    );
  }
  const tail = end === -1 ? '' : rest.slice(end);
  return {
    destination,
    path: tail === '' ? '/' : tail.startsWith('?') ? `/${tail}` : tail,
    authority: `${destination.name}.${destination.namespace}`,
  };
}

/**
 * The target of a forward-proxy request: the absolute form `http://host[:port]/path`, or the
 * origin form `/path` with the `Host` header (a client configured with the proxy as its
 * server). The port, if any, is ignored: a service is called on its instances' port.
 */
export function parseForwardTarget(
  url: string,
  host: string | undefined,
  defaultNamespace: string,
): ProxyTarget {
  let authority: string;
  let path: string;
  if (url.startsWith('/')) {
    authority = host ?? '';
    path = url;
  } else {
    const match = /^http:\/\/([^/?#]*)([^#]*)$/i.exec(url);
    if (match === null) {
      throw new MaxineError(
        'PROXY_BAD_DESTINATION',
        `The forward proxy takes http://{service}[.{namespace}]/{path} URLs, not "${printable(url)}"`,
      );
    }
    authority = match[1] ?? '';
    path = match[2] ?? '';
  }
  const hostname = hostOf(authority);
  const destination = parseServiceName(hostname, defaultNamespace);
  if (destination === undefined) {
    throw new MaxineError(
      'UNKNOWN_PROXY_HOST',
      `Host "${printable(hostname)}" is not a Maxine service (expected {service} or {service}.{namespace}); the sidecar forwards only to services`,
      { host: printable(hostname) },
    );
  }
  return {
    destination,
    path: path === '' ? '/' : path.startsWith('?') ? `/${path}` : path,
    authority: hostname,
  };
}

/** The host of `host[:port]` (bracketed IPv6 kept whole), lower-cased. */
function hostOf(authority: string): string {
  const at = authority.lastIndexOf('@');
  const hostPort = at === -1 ? authority : authority.slice(at + 1);
  const colon = hostPort.lastIndexOf(':');
  const host = colon === -1 || hostPort.endsWith(']') ? hostPort : hostPort.slice(0, colon);
  return host.toLowerCase();
}

function firstOf(text: string, a: string, b: string): number {
  const i = text.indexOf(a);
  const j = text.indexOf(b);
  if (i === -1) return j;
  if (j === -1) return i;
  return Math.min(i, j);
}

/** At most 128 characters, control characters shown as `?`: safe in a message. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.slice(0, 128).replace(/[\u0000-\u001f\u007f]/g, '?');
}
