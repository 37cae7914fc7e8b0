/**
 * The command line of `kubectl maxine`, tokenized by node:util parseArgs and validated by zod
 * (pure). kubectl passes a plugin the words after `kubectl maxine` unchanged.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { EXIT, PluginError } from './exit-codes.js';

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower case, digits, -)');
/** `name` or `namespace/name`. */
const serviceRef = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    'must be NAME or NAMESPACE/NAME',
  );

const common = {
  namespace: dnsLabel.optional(),
  allNamespaces: z.boolean().default(false),
  operatorNamespace: dnsLabel.default('maxine-system'),
  operatorService: dnsLabel.default('maxine-operator'),
  operatorPort: z
    .string()
    .regex(/^([0-9]{1,5}|[a-z][-a-z0-9]{0,14})$/)
    .default('7710'),
  server: z.url({ protocol: /^https?$/ }).optional(),
  token: z.string().min(1).optional(),
  kubeconfig: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
};
const output = z.enum(['table', 'wide', 'json', 'yaml']).default('table');

export const commandSchema = z.discriminatedUnion('command', [
  z.object({ command: z.literal('help') }),
  z.object({ command: z.literal('status'), ...common, output }),
  z.object({
    command: z.literal('discover'),
    ...common,
    output,
    service: serviceRef,
    all: z.boolean().default(false),
  }),
  z.object({
    command: z.literal('why'),
    ...common,
    output,
    source: serviceRef,
    destination: serviceRef,
    path: z.string().startsWith('/', 'must start with /').max(2048).optional(),
    method: z
      .string()
      .regex(/^[A-Z]{1,16}$/, 'must be an upper-case HTTP method such as GET')
      .optional(),
  }),
  z.object({
    command: z.literal('graph'),
    ...common,
    output: z.enum(['table', 'wide', 'json', 'yaml', 'dot']).default('table'),
  }),
  z.object({
    command: z.literal('events'),
    ...common,
    output: z.enum(['table', 'wide', 'json']).default('table'),
    follow: z.boolean().default(false),
    services: z.array(serviceRef).max(100).default([]),
    types: z
      .array(z.string().regex(/^[a-z_]{1,64}$/))
      .max(32)
      .default([]),
  }),
  z.object({
    command: z.literal('inject-check'),
    ...common,
    output,
    pod: z
      .string()
      .regex(/^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/, 'must be a pod name (DNS subdomain)'),
  }),
]);
export type Command = z.infer<typeof commandSchema>;
export type CommonOptions = Exclude<Command, { command: 'help' }>;

const OPTIONS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  'operator-namespace': { type: 'string' },
  'operator-service': { type: 'string' },
  'operator-port': { type: 'string' },
  server: { type: 'string' },
  token: { type: 'string' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  output: { type: 'string', short: 'o' },
  all: { type: 'boolean' },
  path: { type: 'string' },
  method: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  services: { type: 'string' },
  types: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The positional arguments each command takes, by name. */
const POSITIONALS: Record<string, readonly string[]> = {
  status: [],
  discover: ['service'],
  why: ['source', 'destination'],
  graph: [],
  events: [],
  'inject-check': ['pod'],
};

const list = (v: string | undefined): string[] | undefined =>
  v === undefined ? undefined : v.split(',').filter((s) => s !== '');

/** Parses argv (without node and the script); a usage error is a PluginError with exit 2. */
export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new PluginError(EXIT.usage, (err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (command === undefined || command === 'help' || values.help === true)
    return { command: 'help' };
  const names = POSITIONALS[command];
  if (names === undefined)
    throw new PluginError(EXIT.usage, `unknown command "${command}"; see kubectl maxine help`);
  if (rest.length !== names.length)
    throw new PluginError(
      EXIT.usage,
      `${command} takes ${names.length === 0 ? 'no arguments' : names.map((n) => n.toUpperCase()).join(' ')}, got ${rest.length === 0 ? 'none' : rest.join(' ')}`,
    );
  const raw = rawOf(command, values);
  names.forEach((name, i) => (raw[name] = rest[i]));
  const result = commandSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const flag = issue?.path.join('.') ?? '';
    throw new PluginError(
      EXIT.usage,
      `invalid ${flag || 'arguments'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  refuseForeignFlags(command, raw, result.data);
  return result.data;
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** The parsed flags under the names of commandSchema (undefined when not given). */
function rawOf(command: string, values: Values): Record<string, unknown> {
  return {
    command,
    namespace: values.namespace,
    allNamespaces: values['all-namespaces'],
    operatorNamespace: values['operator-namespace'],
    operatorService: values['operator-service'],
    operatorPort: values['operator-port'],
    server: values.server,
    token: values.token,
    kubeconfig: values.kubeconfig,
    context: values.context,
    output: values.output,
    all: values.all,
    path: values.path,
    method: values.method,
    follow: values.follow,
    services: list(values.services),
    types: list(values.types),
  };
}

/** A flag another command takes is an error here, not silently ignored. */
function refuseForeignFlags(command: string, raw: Record<string, unknown>, data: object): void {
  const known = new Set(Object.keys(data));
  for (const [key, value] of Object.entries(raw))
    if (value !== undefined && !known.has(key))
      throw new PluginError(EXIT.usage, `${command} does not take --${flagOf(key)}`);
}

const flagOf = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `name` or `namespace/name` → both parts, the namespace defaulting to `namespace`. */
export function splitRef(ref: string, namespace: string): { namespace: string; name: string } {
  const slash = ref.indexOf('/');
  return slash < 0
    ? { namespace, name: ref }
    : { namespace: ref.slice(0, slash), name: ref.slice(slash + 1) };
}

export const HELP = `kubectl maxine: look at a Maxine service registry from kubectl

Commands:
  status                       services with their instances by health
  discover SERVICE [--all]     the instance discovery answers (all healthy ones with --all)
  why SOURCE DESTINATION       may SOURCE call DESTINATION, and which intention decides
        [--method GET] [--path /x]
  graph                        the dependency graph (-o dot for Graphviz)
  events [-f]                  the events the operator holds; -f: follow new ones as they come
        [--services a,ns/b] [--types t1,t2]
  inject-check POD             why POD did or did not get a sidecar

Flags:
  -n, --namespace NS           namespace of SERVICE, SOURCE, POD (default: the context's)
  -A, --all-namespaces         status and graph across namespaces
  -o, --output FORMAT          table (default), wide, json, yaml; dot for graph
  --operator-namespace NS      where the operator runs (default maxine-system)
  --operator-service NAME      its Service (default maxine-operator)
  --operator-port PORT         the Service port, number or name (default 7710)
  --server URL                 talk to the operator at URL instead of through the API server
  --token TOKEN                bearer token for --server (default: the kubeconfig user's)
  --kubeconfig FILE, --context NAME

Exit codes: 0 ok, 1 failed, 2 usage, 3 operator missing or unreachable,
            4 forbidden or unauthenticated, 5 not found.
`;
