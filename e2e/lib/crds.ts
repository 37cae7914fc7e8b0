/**
 * Waiting for CRDs to be Established without racing them. `kubectl wait --for
 * condition=established` fails at once on a CRD whose status has no conditions yet (the API
 * server sets them a moment after the object is created), and on a name that is not there yet;
 * this polls `kubectl get` until every CRD named exists and says Established=True.
 */

/** What runs kubectl (ControlPlane.kubectl fits). */
export type KubectlRun = (
  args: string[],
) => Promise<{ code: number; stdout: string; stderr: string }>;

interface Crd {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

/** The names among `crds` (a List or one object, as `kubectl get -o json` prints) not Established. Pure. */
export function notEstablished(json: string): string[] {
  const got = JSON.parse(json) as Crd | { items: Crd[] };
  const crds = 'items' in got ? got.items : [got];
  return crds
    .filter(
      (c) =>
        !(c.status?.conditions ?? []).some((x) => x.type === 'Established' && x.status === 'True'),
    )
    .map((c) => c.metadata.name);
}

/**
 * Polls until every CRD of `names` (as kubectl names them: `crd/x` or
 * `customresourcedefinition.apiextensions.k8s.io/x`) exists and is Established; throws after
 * `timeoutMs` saying which are not, or what kubectl said.
 */
export async function untilCrdsEstablished(
  kubectl: KubectlRun,
  names: readonly string[],
  timeoutMs = 60_000,
  pollMs = 200,
): Promise<void> {
  if (names.length === 0) throw new Error('no CRD named to wait for');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubectl(['get', ...names, '-o', 'json']);
    const pending = r.code === 0 ? notEstablished(r.stdout) : undefined;
    if (pending?.length === 0) return;
    if (Date.now() > deadline) {
      const why = pending === undefined ? r.stderr.trim() : `not yet: ${pending.join(', ')}`;
      throw new Error(`CRDs not Established within ${timeoutMs} ms (${why})`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Applies the CRDs of `path` (a file or folder; `serverSide`: `--server-side`) and waits until
 * each is Established.
 */
export async function applyCrds(
  kubectl: KubectlRun,
  path: string,
  { serverSide = false, timeoutMs = 60_000 } = {},
): Promise<void> {
  const args = ['apply', ...(serverSide ? ['--server-side'] : []), '-f', path, '-o', 'name'];
  const applied = await kubectl(args);
  if (applied.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${applied.stderr}`);
  const names = applied.stdout.split('\n').filter((l) => l.startsWith('customresourcedefinition'));
  await untilCrdsEstablished(kubectl, names, timeoutMs);
}
