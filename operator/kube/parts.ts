/**
 * Everything of Kubernetes mode that needs `@kubernetes/client-node`, loaded only in that mode:
 * the client costs ~67 MB of private memory on import (bench/RESULTS-memory.md), which a
 * standalone operator never uses (docs/decisions/0027-memory-per-instance-and-sidecar-footprint.md).
 * The composition root awaits `loadKubeParts()` before `createOperator` in Kubernetes mode.
 */
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { KubeUserReviewer } from '../auth/kube-user.js';
import { TokenReviewer } from '../auth/tokenreview.js';
import type { TokenReviewerOptions } from '../auth/tokenreview.js';
import { MeshController } from '../mesh/controller.js';
import { KubeSource } from '../sources/kube.js';
import { createInjector } from '../webhook/injector.js';
import { EventRecorder } from './event-recorder.js';
import { HealthConditionWriter } from './health-condition.js';
import { LeaderElector } from './leader.js';
import { KubeRegistrations } from './registrations.js';
import type { ReviewSlots } from '../auth/review-slots.js';

export const kubeParts = {
  KubeConfig,
  KubeSource,
  EventRecorder,
  LeaderElector,
  KubeRegistrations,
  HealthConditionWriter,
  MeshController,
  createInjector,
  makeReviewer: (opts: TokenReviewerOptions): TokenReviewer => new TokenReviewer(opts),
  /** A kubectl user's forwarded token, reviewed for the API server's own audiences. */
  makeUserReviewer: (kubeConfig: KubeConfig, slots?: ReviewSlots): KubeUserReviewer => {
    const api = kubeConfig.makeApiClient(AuthenticationV1Api);
    return new KubeUserReviewer({
      ...(slots && { slots }),
      ask: async (token) =>
        (
          await api.createTokenReview({
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
          })
        ).status,
    });
  },
};

export type KubeParts = typeof kubeParts;
