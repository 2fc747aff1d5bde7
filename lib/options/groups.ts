import { randomUUID } from 'node:crypto'
import type { ClusterRedisClient, LinkServerOptions, MetricsRegistry } from '../../types/index.js'
import { FST_LINK_INVALID_OPTION } from '../errors.js'
import type { ResolvedClusterOptions, ResolvedMetrics, ResolvedReplay, Sessions } from './resolve.js'
import { resolveCount, resolveGroup, resolveMilliseconds, resolvePath, resolveTimer } from './values.js'
import {
  clusterNamePattern,
  clusterOptionNames,
  defaultHealthPath,
  defaultLinkConflict,
  defaultMetricsPath,
  defaultNamespace,
  defaultNodeTimeoutMilliseconds,
  defaultReconnectWindowMilliseconds,
  defaultReplayMaxAgeMilliseconds,
  defaultReplayMaxMessages,
  healthOptionNames,
  linkConflictModes,
  metricsOptionNames,
  optionMinimums,
  replayOptionNames
} from './defaults.js'

export function resolveCluster (value: unknown): Omit<ResolvedClusterOptions, 'rooms'> | undefined {
  if (value === undefined) {
    return undefined
  }
  const cluster = resolveGroup('cluster', value, clusterOptionNames, 'must be an object with a redis URL or client')
  const timeout = resolveTimer('cluster.nodeTimeoutMilliseconds',
    resolveMilliseconds('cluster.nodeTimeoutMilliseconds', cluster.nodeTimeoutMilliseconds, defaultNodeTimeoutMilliseconds))
  if (timeout < optionMinimums['cluster.nodeTimeoutMilliseconds']) {
    throw new FST_LINK_INVALID_OPTION('cluster.nodeTimeoutMilliseconds', `must be at least ${optionMinimums['cluster.nodeTimeoutMilliseconds']} milliseconds`)
  }
  return {
    redis: resolveRedis(cluster.redis),
    namespace: resolveClusterName('cluster.namespace', cluster.namespace, defaultNamespace),
    nodeId: resolveClusterName('cluster.nodeId', cluster.nodeId, randomUUID()),
    nodeTimeoutMilliseconds: timeout
  }
}

export function resolveRedis (value: unknown): string | ClusterRedisClient {
  if (typeof value === 'string') {
    if (!/^rediss?:\/\/./.test(value)) {
      throw new FST_LINK_INVALID_OPTION('cluster.redis', 'must be a redis:// or rediss:// URL, or an ioredis client')
    }
    return value
  }
  if (typeof value !== 'object' || value === null || typeof (value as { duplicate?: unknown }).duplicate !== 'function') {
    throw new FST_LINK_INVALID_OPTION('cluster.redis', 'must be a redis:// or rediss:// URL, or an ioredis client')
  }
  return value as ClusterRedisClient
}

export function resolveClusterName (name: string, value: unknown, fallback: string): string {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'string' || !clusterNamePattern.test(value)) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be 1 to 100 letters, digits or . _ : -')
  }
  return value
}

export function resolveSessions (options: LinkServerOptions): Sessions {
  const windowMilliseconds = resolveTimer('reconnectWindowMilliseconds',
    resolveMilliseconds('reconnectWindowMilliseconds', options.reconnectWindowMilliseconds, defaultReconnectWindowMilliseconds))
  if (windowMilliseconds < 0) {
    throw new FST_LINK_INVALID_OPTION('reconnectWindowMilliseconds', 'must be 0 (off) or a positive number of milliseconds')
  }
  const linkConflict = options.linkConflict ?? defaultLinkConflict
  if (!linkConflictModes.includes(linkConflict)) {
    throw new FST_LINK_INVALID_OPTION('linkConflict', "must be 'reject' or 'takeover'")
  }
  return { windowMilliseconds, replay: resolveReplay(options.replay, windowMilliseconds), takeover: linkConflict === 'takeover' }
}

export function resolveReplay (value: unknown, windowMilliseconds: number): ResolvedReplay | undefined {
  if (value === undefined) {
    return undefined
  }
  const replay = resolveGroup('replay', value, replayOptionNames, 'must be an object: { maxMessages?, maxAgeMilliseconds? }')
  const maxAgeMilliseconds = resolveTimer('replay.maxAgeMilliseconds', resolveMilliseconds('replay.maxAgeMilliseconds',
    replay.maxAgeMilliseconds, windowMilliseconds > 0 ? windowMilliseconds : defaultReplayMaxAgeMilliseconds))
  if (maxAgeMilliseconds < 1) {
    throw new FST_LINK_INVALID_OPTION('replay.maxAgeMilliseconds', 'must be at least 1 millisecond')
  }
  return { maxMessages: resolveCount('replay.maxMessages', replay.maxMessages, defaultReplayMaxMessages, false), maxAgeMilliseconds }
}

export function resolveMetrics (value: unknown): ResolvedMetrics | undefined {
  if (value === undefined || value === false) {
    return undefined
  }
  const shape = 'must be true or an object: { path?: string | false, registry?: a prom-client Registry }'
  const metrics = value === true ? {} : resolveGroup('metrics', value, metricsOptionNames, shape)
  const registry = metrics.registry
  if (registry !== undefined && (typeof registry !== 'object' || registry === null ||
      typeof (registry as Partial<MetricsRegistry>).registerMetric !== 'function' || typeof (registry as Partial<MetricsRegistry>).metrics !== 'function')) {
    throw new FST_LINK_INVALID_OPTION('metrics.registry', 'must be a prom-client Registry')
  }
  const path = metrics.path === false ? undefined : resolvePath('metrics.path', metrics.path, registry === undefined ? defaultMetricsPath : undefined)
  return { path, registry: registry as MetricsRegistry | undefined }
}

export function resolveHealth (value: unknown): string | undefined {
  if (value === undefined || value === false) {
    return undefined
  }
  const health = value === true ? {} : resolveGroup('health', value, healthOptionNames, 'must be true or an object: { path?: string }')
  return resolvePath('health.path', health.path, defaultHealthPath)
}
