/**
 * Everything of Kubernetes mode that needs `@kubernetes/client-node`, loaded only in that mode:
 * the client costs ~67 MB of private memory on import (bench/RESULTS-memory.md), which a
 * standalone operator never uses (docs/decisions/0027-memory-per-instance-and-sidecar-footprint.md).
 * The composition root awaits `loadKubeParts()` before `createOperator` in Kubernetes mode.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { TokenReviewer } from '../auth/tokenreview.js';
import type { TokenReviewerOptions } from '../auth/tokenreview.js';
import { MeshController } from '../mesh/controller.js';
import { KubeSource } from '../sources/kube.js';
import { createInjector } from '../webhook/injector.js';
import { EventRecorder } from './event-recorder.js';
import { HealthConditionWriter } from './health-condition.js';
import { LeaderElector } from './leader.js';
import { KubeRegistrations } from './registrations.js';

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
};

export type KubeParts = typeof kubeParts;
