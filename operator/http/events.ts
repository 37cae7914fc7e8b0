/**
 * The event stream: `GET /api/v1/events` upgraded to a WebSocket. A client names the services
 * and types it wants; with `since=SEQ` it gets what it missed, or a `resync` snapshot when
 * the log no longer holds that far back; with `snapshot=true` it starts from a snapshot.
 * Like a Kubernetes list + watch: snapshot, then deltas.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { MaxineError, validationError } from '../../common/errors.js';
import { eventsQuerySchema } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { EventFilter } from '../events/log.js';
import type { EventLog } from '../events/log.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../telemetry/logger.js';
import type { Clock } from '../registry/clock.js';
import { errorHeaders, toMaxineError } from './errors.js';
import type { Principal } from '../auth/authenticator.js';
import type { AccessControl } from '../policy/access.js';

export const EVENTS_PATH = '/api/v1/events';
/** A subscriber this far behind is cut off; it resumes with `since` and loses nothing. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const PING_INTERVAL_MS = 30_000;

export interface EventsDeps {
  events: EventLog;
  registry: Registry;
  clock: Clock;
  logger: Logger;
  access: AccessControl;
}

export interface EventStreamServer {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

export function createEventStream(deps: EventsDeps): EventStreamServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, clientTracking: true });
  const alive = new WeakMap<WebSocket, boolean>();
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, PING_INTERVAL_MS);
  pinger.unref();

  /** Which events a subscriber may see: ACL changes need admin, the rest read. */
  function visibility(principal: Principal): (event: MaxineEvent) => boolean {
    const canRead = deps.access.canRead(principal);
    return (event) => {
      const service = event.service;
      if (service === undefined) return true;
      if (event.type === 'acl_changed') {
        return deps.access.mayAdminister(principal, service.namespace);
      }
      return canRead(service);
    };
  }

  function snapshot(filter: EventFilter, principal: Principal): MaxineEvent {
    const canRead = deps.access.canRead(principal);
    const services = deps.registry
      .listServices()
      .filter((s) => filter.matchesService(s.namespace, s.name) && canRead(s))
      .map((s) => {
        const detail = deps.registry.getService(s.namespace, s.name);
        return { ...s, ...(detail?.spec && { spec: detail.spec }), items: detail?.items ?? [] };
      });
    return {
      seq: deps.events.lastSeq,
      type: 'resync',
      time: new Date(deps.clock.now()).toISOString(),
      data: { services },
    };
  }

  function serve(
    ws: WebSocket,
    principal: Principal,
    filter: EventFilter,
    query: { since?: number | undefined; snapshot?: boolean | undefined },
  ): void {
    const { since } = query;
    const visible = visibility(principal);
    const wanted = (event: MaxineEvent): boolean => filter.matches(event) && visible(event);
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    const send = (event: MaxineEvent): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(1013, 'slow consumer: reconnect with since=<last seq>');
        return;
      }
      ws.send(deps.events.serialized(event));
    };
    // Replay and subscribe in the same tick: no event can fall between them.
    const missed = since === undefined ? [] : deps.events.since(since);
    if (missed === undefined || (since === undefined && query.snapshot === true))
      send(snapshot(filter, principal));
    else for (const event of missed) if (wanted(event)) send(event);
    const unsubscribe = deps.events.subscribe((event) => {
      if (wanted(event)) send(event);
    });
    ws.on('close', unsubscribe);
    ws.on('error', (err) => deps.logger.debug({ err }, 'event stream socket error'));
  }

  return {
    handleUpgrade(req, socket, head) {
      try {
        const target = req.url ?? '/';
        const q = target.indexOf('?');
        const pathname = q === -1 ? target : target.slice(0, q);
        if (pathname !== EVENTS_PATH) {
          throw new MaxineError(
            'ROUTE_NOT_FOUND',
            `No WebSocket endpoint ${pathname.slice(0, 256)}`,
          );
        }
        const params = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
        const raw = Object.fromEntries(params);
        if ([...params.keys()].length !== Object.keys(raw).length) {
          throw new MaxineError('VALIDATION_FAILED', 'A query parameter is given twice');
        }
        const parsed = eventsQuerySchema.safeParse(raw);
        if (!parsed.success) throw validationError('query', parsed.error);
        const query = parsed.data;
        const filter = new EventFilter(query.services, query.types);
        const accept = (principal: Principal): void => {
          if (socket.destroyed) return;
          wss.handleUpgrade(req, socket, head, (ws) => {
            deps.logger.info(
              {
                who: principal.who,
                services: query.services ?? ['*/*'],
                types: query.types ?? 'all',
                since: query.since,
              },
              'event subscriber connected',
            );
            serve(ws, principal, filter, query);
          });
        };
        const principal = deps.access.principal(req, 'events.subscribe');
        if (principal instanceof Promise) {
          principal.then(accept, (err: unknown) => rejectUpgrade(socket, toMaxineError(err)));
        } else accept(principal);
      } catch (err) {
        rejectUpgrade(socket, toMaxineError(err));
      }
    },
    close() {
      clearInterval(pinger);
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      wss.close();
    },
  };
}

function rejectUpgrade(socket: Duplex, err: MaxineError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(err.toBody());
  const extra = Object.entries(errorHeaders(err))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${err.status} ${err.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}
