/**
 * The reload action a pod asks for after a config change (`maxine.io/config-reload`, passed to
 * the sidecar as `MAXINE_CONFIG_RELOAD`): parsed the same by the webhook, which refuses a bad
 * value at admission, and by the sidecar, which runs it (`sidecar/app-config/reload.ts`). Pure.
 */
export const RELOAD_SIGNALS = ['HUP', 'USR1', 'USR2', 'INT', 'TERM', 'QUIT'] as const;
export const RELOAD_HTTP_METHODS = ['POST', 'PUT', 'GET'] as const;

export type ReloadAction =
  | { kind: 'signal'; signal: (typeof RELOAD_SIGNALS)[number]; process: string }
  | { kind: 'http'; method: (typeof RELOAD_HTTP_METHODS)[number]; path: string };

/** Parses the annotation's value; a message saying what is wrong otherwise. */
export function parseReloadAction(text: string): ReloadAction | string {
  const [kind, first, ...rest] = text.trim().split(':');
  const second = rest.join(':');
  if (kind === 'signal') {
    const signal = RELOAD_SIGNALS.find((s) => s === first?.replace(/^SIG/, ''));
    if (signal === undefined) return `signal must be one of ${RELOAD_SIGNALS.join(', ')}`;
    if (!/^[A-Za-z0-9_.+-]{1,64}$/.test(second))
      return 'signal:<SIG>:<process name> needs the name of the process to signal';
    return { kind, signal, process: second };
  }
  if (kind === 'http') {
    const method = RELOAD_HTTP_METHODS.find((m) => m === first?.toUpperCase());
    if (method === undefined) return `http method must be one of ${RELOAD_HTTP_METHODS.join(', ')}`;
    if (!/^\/[\x21-\x7e]{0,1023}$/.test(second))
      return 'http:<METHOD>:<path> needs a path starting with /';
    return { kind, method, path: second };
  }
  return 'the reload action is signal:<SIG>:<process name> or http:<METHOD>:<path>';
}
