import { describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { renderToYaml, wantsYaml } from './format.js';
import type { MeshRender } from './model.js';

const render = (message: string): MeshRender => ({
  mesh: 'istio',
  objects: [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'orders', namespace: 'shop', labels: {} },
      spec: { host: 'orders.shop.svc.cluster.local' },
    },
  ],
  differences: [{ subject: 'spec.x', message }],
});

describe('renderToYaml', () => {
  it('keeps user text inside its comment: a line break cannot start a document', () => {
    const hostile = 'Istio cannot express pathRegex /x\n---\napiVersion: v1\nkind: Secret\n#';
    const text = renderToYaml(render(hostile));
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: string } | null);
    expect(docs.filter((d) => d !== null).map((d) => d.kind)).toEqual(['DestinationRule']);
    expect(text).toContain('pathRegex /x\\u000a---\\u000aapiVersion');
  });

  it('reads the Accept header', () => {
    expect(wantsYaml('application/yaml')).toBe(true);
    expect(wantsYaml('text/x-yaml;q=0.9, */*')).toBe(true);
    expect(wantsYaml('text/yaml')).toBe(true);
    expect(wantsYaml('application/json')).toBe(false);
    expect(wantsYaml(undefined)).toBe(false);
  });
});
