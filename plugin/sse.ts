/**
 * A Server-Sent Events reader (pure): fed chunks as they arrive, it calls `onData` with the
 * `data` of each complete event; comments (`: heartbeat`), `id:` and `event:` lines are read
 * past. Lines may be split anywhere between chunks.
 */
export function parseSse(onData: (data: string) => void): (chunk: string) => void {
  let pending = '';
  let data: string[] = [];
  return (chunk) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline).replace(/\r$/, '');
      pending = pending.slice(newline + 1);
      if (line === '') {
        if (data.length > 0) onData(data.join('\n'));
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  };
}
