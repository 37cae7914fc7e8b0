/**
 * The Go builders (e2e/controlplane, e2e/helm, e2e/jaeger, bench/peers/consul) run their
 * `go build` through e2e/lib/go-build.sh. Run with a stand-in `go` that records how it was
 * called, each must keep the command line, module folder, settings and cache paths it always
 * had (so warm caches stay valid), write its BUILDINFO, install its binaries and print their
 * path last.
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

/** Says GOVERSION; for a build, logs "dir|GOFLAGS|args" and makes what -o names. */
const FAKE_GO = `#!/usr/bin/env bash
if [[ $1 == env ]]; then echo go1.26.0; exit 0; fi
printf '%s|%s|%s\\n' "$PWD" "$GOFLAGS" "$*" >>"$GO_LOG"
prev=
for a in "$@"; do [[ $prev == -o ]] && out=$a; prev=$a; done
if [[ $out == */ ]]; then
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    touch "$out$b" && chmod +x "$out$b"
  done
else
  touch "$out" && chmod +x "$out"
fi
`;

function run(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(ROOT, script)],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code ?? 1), stdout, stderr }),
    );
  });
}

const info = (text: string): Record<string, string> =>
  Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );

describe('Go builders through e2e/lib/go-build.sh', () => {
  const flags = '-trimpath -buildvcs=false -mod=readonly';
  it.each([
    {
      script: 'bench/peers/consul/build.sh',
      out: (c: string, i: Record<string, string>) => `${c}/consul/${i.CONSUL_VERSION}/bin/consul`,
      builds: (c: string, i: Record<string, string>) => [
        `${ROOT}/bench/peers/consul|${flags}|build -p 2 -ldflags -s -w -o ${c}/consul/${i.CONSUL_VERSION}/bin.tmp/consul github.com/hashicorp/consul`,
      ],
    },
    {
      script: 'e2e/helm/build.sh',
      out: (c: string, i: Record<string, string>) => `${c}/helm/${i.HELM_VERSION}/bin/helm`,
      builds: (c: string, i: Record<string, string>) => {
        const m = 'helm.sh/helm/v3';
        const minor = i.K8S_MODULES_VERSION!.split('.')[1]!;
        const k8s = ['pkg/lint/rules', 'pkg/chartutil']
          .map((p) => ` -X ${m}/${p}.k8sVersionMajor=1 -X ${m}/${p}.k8sVersionMinor=${minor}`)
          .join('');
        return [
          `${ROOT}/e2e/helm|${flags}|build -p 2 -ldflags -s -w -X ${m}/internal/version.version=${i.HELM_VERSION} -X ${m}/internal/version.gitTreeState=clean${k8s} -o ${c}/helm/${i.HELM_VERSION}/bin.tmp/helm ${m}/cmd/helm`,
        ];
      },
    },
    {
      script: 'e2e/jaeger/build.sh',
      out: (c: string, i: Record<string, string>) => `${c}/jaeger/${i.JAEGER_VERSION}/jaeger`,
      builds: (c: string, i: Record<string, string>) => {
        const m = 'github.com/jaegertracing/jaeger';
        return [
          `${ROOT}/e2e/jaeger|${flags}|build -p 2 -ldflags -s -w -X ${m}/internal/version.latestVersion=${i.JAEGER_VERSION} -o ${c}/jaeger/${i.JAEGER_VERSION}/jaeger.tmp ${m}/cmd/jaeger`,
        ];
      },
    },
    {
      script: 'e2e/controlplane/build.sh',
      out: (c: string, i: Record<string, string>) =>
        `${c}/controlplane/${i.K8S_VERSION}-${i.ETCD_VERSION}-${i.KWOK_VERSION}/bin`,
      binDir: true,
      builds: (c: string, i: Record<string, string>) => {
        const tmp = `${c}/controlplane/${i.K8S_VERSION}-${i.ETCD_VERSION}-${i.KWOK_VERSION}/bin.tmp`;
        const minor = i.K8S_VERSION!.split('.')[1]!;
        const stamp = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']
          .map(
            (p) =>
              ` -X ${p}.gitVersion=${i.K8S_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean`,
          )
          .join('');
        const k = 'k8s.io/kubernetes/cmd';
        return [
          `${ROOT}/e2e/controlplane|${flags}|build -p 2 -ldflags -s -w${stamp} -o ${tmp}/ ${k}/kube-apiserver ${k}/kube-controller-manager ${k}/kube-scheduler ${k}/kubectl`,
          `${ROOT}/e2e/controlplane|${flags}|build -p 2 -ldflags -s -w -o ${tmp}/etcd go.etcd.io/etcd/server/v3`,
          `${ROOT}/e2e/controlplane/kwok|${flags}|build -p 2 -ldflags -s -w -o ${tmp}/kwok sigs.k8s.io/kwok/cmd/kwok`,
        ];
      },
    },
  ])('$script: the same go build, cache path and BUILDINFO', async (c) => {
    const dir = mkdtempSync(join(tmpdir(), 'maxine-go-build.'));
    try {
      const bin = join(dir, 'fakebin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'go'), FAKE_GO);
      chmodSync(join(bin, 'go'), 0o755);
      const cache = join(dir, 'cache');
      const log = join(dir, 'go.log');
      const env = {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        MAXINE_CACHE_DIR: cache,
        GO_LOG: log,
        BUILD_PARALLEL: '2',
        FORCE_REBUILD: '',
      };
      const r = await run(c.script, env);
      expect(r.code).toBe(0);
      const printed = r.stdout.trim().split('\n').at(-1) ?? '';
      const i = info(
        readFileSync(join(c.binDir ? printed : dirname(printed), 'BUILDINFO'), 'utf8'),
      );
      expect(i.GO_VERSION).toBe('go1.26.0');
      expect(Number(i.BUILD_SECONDS)).toBeGreaterThanOrEqual(0);
      const out = c.out(cache, i);
      expect(printed).toBe(out);
      expect(existsSync(out)).toBe(true);
      expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(c.builds(cache, i));
      // Built: the second run builds nothing and prints the same path.
      const again = await run(c.script, env);
      expect(again.code).toBe(0);
      expect(again.stdout.trim()).toBe(out);
      expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(c.builds(cache, i).length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
