/** The part of pino-roll (which ships no types) that the audit log uses. */
declare module 'pino-roll' {
  import type { DestinationStream } from 'pino';
  interface RollOptions {
    file: string;
    size?: string | number;
    frequency?: 'daily' | 'hourly' | number;
    extension?: string;
    mkdir?: boolean;
    limit?: { count: number; removeOtherLogFiles?: boolean };
    sync?: boolean;
  }
  export default function build(options: RollOptions): Promise<
    DestinationStream & {
      end(): void;
      once(e: 'close' | 'ready', f: () => void): void;
      flush(cb: (err?: Error) => void): void;
    }
  >;
}
