/**
 * Where declared resources come from. Standalone mode reads a folder (`folder.ts`), Kubernetes
 * mode watches the API server (`kube.ts`); both validate with the same zod schemas and hand
 * the same objects to the one reconciler (docs/decisions/0002-one-reconciler-two-sources.md).
 */
export interface ResourceSource {
  /** True once the first full read (folder scan, informer lists) has been applied. */
  readonly ready: boolean;
  /** What could not be applied and why (invalid files or objects), for /readyz and logs. */
  problems(): unknown[];
  start(): Promise<void>;
  stop(): Promise<void>;
}
