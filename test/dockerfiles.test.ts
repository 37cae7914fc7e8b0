/**
 * Rules for the two images, checked on the Dockerfiles themselves (no Docker engine in CI and
 * no hadolint in the registries here): multi-stage, base images pinned to a release or digest
 * of an LTS Node line, a numeric non-root USER, nothing secret copied, the sidecar image built
 * without the operator's code, a HEALTHCHECK, and an entrypoint that writes nothing (read-only
 * root filesystem).
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { SIDECAR_BUNDLE_EXTERNALS } from '../sidecar/bundle.js';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Stages of a Dockerfile: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ');
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(args);
      if (f === null) throw new Error(`cannot read FROM ${args}`);
      stages.push({ from: f[1]!, ...(f[2] === undefined ? {} : { name: f[2] }), instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`${op} before FROM`);
      stages.at(-1)!.instructions.push({ op, args });
    }
  }
  return stages;
}

/** The sources of a COPY or ADD (flags dropped; the last word is the destination). */
function sources(i: Instruction): { from?: string; paths: string[] } {
  const words = i.args.startsWith('[') ? (JSON.parse(i.args) as string[]) : i.args.split(' ');
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--')).slice(0, -1);
  return from === undefined ? { paths } : { from, paths };
}

/** Base images: pinned to a release (x.y.z) or a digest, of an official Node LTS line. */
function baseProblems(stages: readonly Stage[]): string[] {
  const out: string[] = [];
  const names = new Set(stages.flatMap((s) => (s.name === undefined ? [] : [s.name])));
  if (stages.length < 2) out.push('not multi-stage');
  for (const s of stages) {
    if (names.has(s.from)) continue;
    const pinned = /^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$/.exec(s.from);
    if (pinned === null || (pinned[1] === undefined && pinned[2] === undefined)) {
      out.push(`base image ${s.from} is not pinned to a release (x.y.z) or a digest`);
    }
    const node = /^(?:docker\.io\/(?:library\/)?)?node:(\d+)(?:[.@-]|$)/.exec(s.from);
    if (node === null) out.push(`base image ${s.from} is not an official node image`);
    else if (Number(node[1]) % 2 !== 0) out.push(`node ${node[1]} is not an LTS line (odd major)`);
  }
  return out;
}

/** The final stage: a numeric non-root USER, a HEALTHCHECK, `node` as the entrypoint. */
function runtimeProblems(last: Stage): string[] {
  const out: string[] = [];
  const user = last.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
  if (user === undefined) out.push('the final stage has no USER (runs as root)');
  else if (!/^\d+(:\d+)?$/.test(user)) out.push(`USER ${user} is not a numeric uid`);
  else if (user.split(':').some((id) => Number(id) === 0)) out.push(`USER ${user} is root`);
  if (!last.instructions.some((i) => i.op === 'HEALTHCHECK' && !/^NONE$/i.test(i.args))) {
    out.push('the final stage has no HEALTHCHECK');
  }
  const entry = last.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1);
  if (entry === undefined || !/^\["node",/.test(entry.args)) {
    out.push('ENTRYPOINT is not ["node", ...] (npm and shells write to $HOME, which is read-only)');
  }
  return out;
}

const SECRET_PATH = /(^|\/)(\.env(\..*)?|\.npmrc|id_rsa.*|.*\.pem|.*\.key|.*secret.*|\.git)$/i;

/** What goes into the image from the build context: no secrets, no whole context, no ADD. */
function copyProblems(i: Instruction): string[] {
  const out: string[] = [];
  if (i.op === 'ADD') out.push(`ADD ${i.args}: use COPY (ADD fetches URLs and unpacks)`);
  if ((i.op === 'ENV' || i.op === 'ARG') && /(PASSWORD|TOKEN|SECRET|_KEY)\b/i.test(i.args)) {
    out.push(`${i.op} ${i.args}: a secret in the image`);
  }
  if (i.op !== 'COPY' && i.op !== 'ADD') return out;
  const { from, paths } = sources(i);
  if (from !== undefined) return out;
  for (const p of paths) {
    if (p === '.' || p === './' || p === '*') out.push(`COPY ${i.args}: copies the whole context`);
    if (SECRET_PATH.test(p)) out.push(`COPY ${i.args}: copies ${p}, which may hold a secret`);
  }
  return out;
}

/** Every rule's problems (empty: the file passes). */
export function problems(text: string): string[] {
  const stages = parseDockerfile(text);
  const last = stages.at(-1);
  if (last === undefined) return ['no FROM'];
  return [
    ...baseProblems(stages),
    ...runtimeProblems(last),
    ...stages.flatMap((s) => s.instructions.flatMap(copyProblems)),
  ];
}

const operator = readFileSync('Dockerfile.operator', 'utf8');
const sidecar = readFileSync('Dockerfile.sidecar', 'utf8');

describe('Dockerfile rules', () => {
  it.each([
    ['Dockerfile.operator', operator],
    ['Dockerfile.sidecar', sidecar],
  ])('%s passes every rule', (_file, text) => {
    expect(problems(text)).toEqual([]);
  });

  it('both images use the same Node release', () => {
    const bases = (t: string) =>
      new Set(
        parseDockerfile(t)
          .map((s) => s.from)
          .filter((f) => f.startsWith('node:')),
      );
    expect([...bases(operator)]).toHaveLength(1);
    expect([...bases(sidecar)]).toEqual([...bases(operator)]);
  });

  // The rules themselves: each bad file is caught, with the reason.
  const good = `FROM node:26.10.0-slim AS build
COPY package.json ./
FROM node:26.10.0-slim
COPY --from=build /src/dist ./dist
HEALTHCHECK CMD ["node", "-e", "1"]
USER 1000:1000
ENTRYPOINT ["node", "dist/main.js"]
`;
  const table: [string, string, string][] = [
    ['unpinned tag', good.replaceAll('node:26.10.0-slim', 'node:26-slim'), 'is not pinned'],
    ['latest', good.replaceAll('node:26.10.0-slim', 'node:latest'), 'is not pinned'],
    ['odd Node line', good.replaceAll('26.10.0', '25.2.1'), 'not an LTS line'],
    ['named user', good.replace('USER 1000:1000', 'USER node'), 'is not a numeric uid'],
    ['root user', good.replace('USER 1000:1000', 'USER 0'), 'is root'],
    ['no user', good.replace('USER 1000:1000\n', ''), 'runs as root'],
    ['no healthcheck', good.replace(/HEALTHCHECK.*\n/, ''), 'no HEALTHCHECK'],
    [
      'one stage',
      good.split('FROM node:26.10.0-slim\n')[0]! + 'USER 1\nHEALTHCHECK CMD x\nENTRYPOINT ["node"]',
      'not multi-stage',
    ],
    ['.env copied', good.replace('COPY package.json ./', 'COPY .env ./'), 'may hold a secret'],
    [
      'key copied',
      good.replace('COPY package.json ./', 'COPY certs/tls.key ./'),
      'may hold a secret',
    ],
    ['whole context', good.replace('COPY package.json ./', 'COPY . .'), 'whole context'],
    ['ADD', good.replace('COPY package.json ./', 'ADD https://example.com/x ./'), 'use COPY'],
    ['secret env', good.replace('USER', 'ENV NPM_TOKEN=abc\nUSER'), 'a secret in the image'],
    ['npm entrypoint', good.replace('["node", "dist/main.js"]', '["npm", "start"]'), 'ENTRYPOINT'],
  ];
  it('a good file passes the rules', () => expect(problems(good)).toEqual([]));
  it.each(table)('catches %s', (_name, text, reason) => {
    expect(problems(text).join('\n')).toContain(reason);
  });

  it('.dockerignore keeps credentials and local state out of the build context', () => {
    const ignored = readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toEqual(
      expect.arrayContaining(['.env', '.env.*', '*.pem', '*.key', '.npmrc', '.git']),
    );
  });
});

describe('the sidecar image against the build output layout', () => {
  const stages = parseDockerfile(sidecar);
  const build = stages.find((s) => s.name === 'build')!;
  const runtime = stages.at(-1)!;
  const tsconfig = JSON.parse(readFileSync('tsconfig.sidecar.json', 'utf8')) as {
    include: string[];
  };

  it('builds with tsconfig.sidecar.json, whose output (dist/common, dist/sidecar) has no operator/', () => {
    expect(build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)).toContainEqual(
      expect.stringContaining('npm run build:sidecar'),
    );
    expect(tsconfig.include.sort()).toEqual(['common', 'sidecar']);
    const copied = build.instructions
      .filter((i) => i.op === 'COPY')
      .flatMap((i) => sources(i).paths);
    expect(copied.filter((p) => /operator|tsconfig\.build\.json/.test(p))).toEqual([]);
  });

  it('its runtime stage copies only the bundle and the packages it leaves out, and runs the bundle in dist/sidecar', () => {
    const copies = runtime.instructions.filter((i) => i.op === 'COPY').map(sources);
    expect(copies).toEqual([
      ...SIDECAR_BUNDLE_EXTERNALS.map((name) => ({
        from: 'build',
        paths: [`/src/node_modules/${name}`],
      })),
      { from: 'build', paths: ['/src/dist/sidecar/*.mjs'] },
    ]);
    // Copying a package's folder is enough only when it depends on nothing.
    for (const name of SIDECAR_BUNDLE_EXTERNALS) {
      const pkg = JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8')) as {
        dependencies?: Record<string, string>;
      };
      expect([name, Object.keys(pkg.dependencies ?? {})]).toEqual([name, []]);
    }
    const entry = JSON.parse(
      runtime.instructions.find((i) => i.op === 'ENTRYPOINT')!.args,
    ) as string[];
    // The esbuild bundle of sidecar/main.ts (sidecar/bundle.ts), built in the build stage.
    expect(entry[1]).toBe('dist/sidecar/maxine-sidecar.mjs');
    expect(build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)).toContainEqual(
      expect.stringMatching(/npm run build:sidecar && npm run build:sidecar-bundle/),
    );
  });

  it('runs with one malloc arena (MALLOC_ARENA_MAX=1), as bench/memory.js measures the image', () => {
    const env = runtime.instructions.filter((i) => i.op === 'ENV').map((i) => i.args);
    expect(env).toContain('MALLOC_ARENA_MAX=1');
  });

  it('mmaps allocations of 32 KB and more (MALLOC_MMAP_THRESHOLD_=32768), as bench/memory.js measures the image', () => {
    const env = runtime.instructions.filter((i) => i.op === 'ENV').map((i) => i.args);
    expect(env).toContain('MALLOC_MMAP_THRESHOLD_=32768');
    // bench/memory.js's image flag set and bench/run.js's sidecar measure the same environment.
    expect(readFileSync('bench/memory.js', 'utf8')).toMatch(
      /IMAGE_SIDECAR_FLAGS =\s*'[^']*\bMALLOC_MMAP_THRESHOLD_=32768\b/,
    );
    expect(readFileSync('bench/run.js', 'utf8')).toContain("MALLOC_MMAP_THRESHOLD_: '32768'");
  });
});
