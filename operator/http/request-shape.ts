/**
 * Requests and responses born with one hidden class, whichever way they are answered
 * (decision 0041).
 *
 * Node's own HTTP and stream functions (`IncomingMessage`'s `headers` getter,
 * `parserOnIncoming`, `resOnFinish`, `clearIncoming`, `endReadable`, …) are shared by every
 * request of the process, and V8 caches their property accesses per hidden class. The fast
 * path leaves a request as Node made it; express swaps its prototype and adds fields (`res`,
 * `next`, `baseUrl`, `params`, `route`, router's symbols, our `id`, `log` and `caller`) in an
 * order that depends on the route. A few requests on express's routes (probes, metrics, a
 * sidecar's mesh polls) then pass more hidden classes through those functions than their
 * caches hold, the caches go megamorphic for good, and every discovery after pays for it
 * (about 2 µs of CPU per secured discovery on Node 26, under 1 on Node 20: decision 0041).
 *
 * So the server makes its requests and responses with express's prototypes from birth (its
 * `Object.setPrototypeOf` then changes nothing) and with every field express, router and we
 * add already declared, in one order: later writes store into existing fields, and the fast
 * path's objects and express's keep one hidden class each. A field a future express adds
 * that is not listed here costs one more hidden class on express's requests only;
 * request-shape.int.test.ts notices it.
 */
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { http } from '../../common/node-http.js';

/** What http.createServer takes to make its requests and responses. */
export interface MessageClasses {
  IncomingMessage: typeof IncomingMessage;
  ServerResponse: typeof ServerResponse;
}

/** router's per-request symbols: the matched route's pattern and the errors it published. */
const ROUTER_SYMBOLS: readonly symbol[] = [
  ...routerSymbol('matchedRoute'),
  Symbol.for('router.tracing.publishedErrors'),
];

/** A symbol router keeps in its own module (not exported by its main entry), if it has it. */
function routerSymbol(name: string): symbol[] {
  try {
    const fromExpress = createRequire(createRequire(import.meta.url).resolve('express'));
    const symbols = fromExpress('router/lib/symbols.js') as Record<string, unknown>;
    const found = symbols[name];
    return typeof found === 'symbol' ? [found] : [];
  } catch {
    // Another router: its requests get one more hidden class, nothing else changes.
    return [];
  }
}

type Fields = Record<PropertyKey, unknown>;

/**
 * The request and response classes to give http.createServer: Node's own, extended with the
 * fields declared, whose prototypes become express's: each class's prototype is put in front
 * of the app's (`app.request`, `app.response`) and takes its place, so express's
 * `Object.setPrototypeOf(req, app.request)` finds it set already.
 *
 * Classes, not functions calling Node's constructors, nor `Reflect.construct` with another
 * new.target: V8 sizes an object's in-object fields by its constructor chain (a plain function
 * left most of a request's fields in an out-of-object array, 4 µs more per discovery on Node
 * 20), and on Node 20 a foreign new.target derives a new hidden class for every object.
 */
export function shapedMessages(app: { request: object; response: object }): MessageClasses {
  class MaxineRequest extends http.IncomingMessage {
    constructor(socket: Socket) {
      super(socket);
      const f = this as unknown as Fields;
      // EventEmitter's count of event names, inherited (0) until the first listener: own
      // from birth, so that the first listener does not add it at a point that depends on
      // the route.
      f._eventsCount = f._eventsCount ?? 0;
      // express's app.handle and router.
      f.res = undefined;
      f.next = undefined;
      f.baseUrl = undefined;
      f.originalUrl = undefined;
      f._parsedUrl = undefined;
      f.params = undefined;
      f.route = undefined;
      for (const symbol of ROUTER_SYMBOLS) f[symbol] = undefined;
      // Ours: app.ts (`id`, `log`, `caller`), caller.ts (`id` on the fast path).
      f.id = undefined;
      f.log = undefined;
      f.caller = undefined;
    }
  }
  // Node passes options (highWaterMark, …) that @types/node does not declare.
  const Outgoing = http.ServerResponse as unknown as new (
    req: IncomingMessage,
    options?: object,
  ) => ServerResponse;
  class MaxineResponse extends Outgoing {
    constructor(req: IncomingMessage, options?: object) {
      super(req, options);
      (this as unknown as Fields).locals = undefined; // express's app.handle
    }
  }
  Object.setPrototypeOf(MaxineRequest.prototype, app.request);
  Object.setPrototypeOf(MaxineResponse.prototype, app.response);
  app.request = MaxineRequest.prototype;
  app.response = MaxineResponse.prototype;
  return {
    IncomingMessage: MaxineRequest,
    ServerResponse: MaxineResponse as unknown as typeof ServerResponse,
  };
}
