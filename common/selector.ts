/** Label selectors as MaxineServices use them (`spec.selector`): equality on every label. Pure. */

/** A selector selects a pod when every label matches; an empty or absent selector selects none. */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}
