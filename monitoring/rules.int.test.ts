/**
 * monitoring/rules.yaml under promtool (Debian package `prometheus`): `check rules`, and the
 * unit tests in monitoring/tests/*.yaml, where every alert must fire in one case and stay
 * quiet in another. Each alert's runbook link must lead to a heading of docs/operations.md.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { z } from 'zod';
import { MONITORING_DIR, readRules } from './sources.js';
import type { Rule } from './sources.js';

const run = promisify(execFile);

async function promtool(args: string[], cwd = MONITORING_DIR) {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('promtool not found: install the Debian package prometheus (.ci/run does)', {
        cause: err,
      });
    return { code: Number(e.code), output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const testFileSchema = z.object({
  tests: z.array(
    z.looseObject({
      name: z.string(),
      alert_rule_test: z
        .array(
          z.object({
            alertname: z.string(),
            eval_time: z.string(),
            exp_alerts: z.array(z.unknown()),
          }),
        )
        .optional(),
    }),
  ),
});

let alerts: Extract<Rule, { alert: string }>[];
let testFiles: string[];
let work: string;

beforeAll(async () => {
  alerts = (await readRules()).filter((r): r is Extract<Rule, { alert: string }> => 'alert' in r);
  testFiles = (await readdir(join(MONITORING_DIR, 'tests')))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join('tests', f));
  work = await mkdtemp(join(tmpdir(), 'maxine-rules-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('monitoring/rules.yaml', () => {
  it('passes promtool check rules', async () => {
    const { code, output } = await promtool(['check', 'rules', 'rules.yaml']);
    expect(output).toContain('SUCCESS');
    expect(code).toBe(0);
  });

  it('passes its promtool unit tests', async () => {
    expect(testFiles.length).toBeGreaterThanOrEqual(3);
    const { code, output } = await promtool(['test', 'rules', ...testFiles]);
    expect(output).not.toContain('FAILED');
    expect(code).toBe(0);
  });

  it('has, for every alert, a test where it fires and one where it does not', async () => {
    const cases = new Map<string, { fires: number; quiet: number }>();
    for (const file of testFiles) {
      const parsed = testFileSchema.parse(
        parse(await readFile(join(MONITORING_DIR, file), 'utf8')),
      );
      for (const t of parsed.tests)
        for (const a of t.alert_rule_test ?? []) {
          const c = cases.get(a.alertname) ?? { fires: 0, quiet: 0 };
          if (a.exp_alerts.length > 0) c.fires += 1;
          else c.quiet += 1;
          cases.set(a.alertname, c);
        }
    }
    for (const { alert } of alerts) {
      expect([alert, cases.get(alert)?.fires ?? 0]).not.toEqual([alert, 0]);
      expect([alert, cases.get(alert)?.quiet ?? 0]).not.toEqual([alert, 0]);
    }
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'MaxineOperatorDown',
        'MaxineNoLeader',
        'MaxineMassExpiryGuardActive',
        'MaxineWebhookFailing',
        'MaxineEventSubscribersDropped',
        'MaxineMeshSyncFailing',
        'MaxineServiceUnavailable',
        'MaxineDiscoveryErrorRateHigh',
      ]),
    );
  });

  it('the unit tests bite: a rule with a wrong threshold fails them', async () => {
    await cp(join(MONITORING_DIR, 'tests'), join(work, 'tests'), { recursive: true });
    const rules = await readFile(join(MONITORING_DIR, 'rules.yaml'), 'utf8');
    expect(rules).toContain('ratio_rate5m > 0.05');
    await writeFile(
      join(work, 'rules.yaml'),
      rules.replace('ratio_rate5m > 0.05', 'ratio_rate5m > 0.5'),
    );
    const { code, output } = await promtool(['test', 'rules', ...testFiles], work);
    expect(output).toContain('MaxineDiscoveryErrorRateHigh');
    expect(code).not.toBe(0);
  });

  it('links every alert to a runbook section of docs/operations.md', async () => {
    const doc = await readFile(join(MONITORING_DIR, '..', 'docs', 'operations.md'), 'utf8');
    const anchors = new Set(
      [...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) =>
        (m[1] as string)
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const { alert, annotations } of alerts) {
      const url = annotations.runbook_url ?? '';
      expect([alert, url.startsWith('docs/operations.md#')]).toEqual([alert, true]);
      expect([alert, anchors.has(url.split('#')[1] ?? '')]).toEqual([alert, true]);
      expect([alert, annotations.summary !== undefined]).toEqual([alert, true]);
    }
  });
});
