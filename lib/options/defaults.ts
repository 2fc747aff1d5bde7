import type { RateLimitOptions } from '../../types/index.js'

export const defaultPath = '/'
export const defaultAcceptNewUsers = true
export const defaultAuthTimeoutMilliseconds = 10_000
export const defaultPingIntervalMilliseconds = 15_000
export const defaultAcceptedVersions: readonly string[] = ['0.5.x', '0.6.x']
export const defaultStrictMessages = false
export const defaultInvalidMessage = 'drop'
export const defaultAsyncApiTitle = 'fastify-link-server'
export const defaultAsyncApiVersion = '0.0.0'
export const invalidMessageModes: readonly string[] = ['drop', 'unlink']
export const defaultMaxPayload = 64 * 1024
export const defaultLinkTimeoutMilliseconds = 30_000
export const defaultMaxLinkAttempts = 10
export const defaultRateLimit: RateLimitOptions = { rate: 100, burst: 200 }
export const defaultMaxUsers = 10_000
export const defaultMaxConnections = 10_000
export const defaultMaxRooms = 10_000
export const defaultAcceptNewRooms = true
export const defaultMaxBufferedBytes = 4 * 1024 * 1024
export const defaultMaxDepth = 64
export const defaultMaxQueuedFrames = 32
export const defaultMaxQueuedBytes = 2 * defaultMaxPayload
/** Node's timers take at most a signed 32-bit number of milliseconds (about 24.8 days); a larger delay becomes 1 ms. */
export const maximumTimerMilliseconds = 2 ** 31 - 1
export const defaultNamespace = 'fastify-link-server'
export const defaultNodeTimeoutMilliseconds = 10_000
export const clusterOptionNames: readonly string[] = ['redis', 'namespace', 'nodeId', 'nodeTimeoutMilliseconds']
/** Ids and namespaces go into Redis keys, channels and the messages between nodes: no braces, separators or spaces. */
export const clusterNamePattern = /^[A-Za-z0-9._:-]{1,100}$/
/**
 * The least value of each option that has one (`pingIntervalMilliseconds` may also be 0, off): a lower one fails
 * registration. The README and the guides state these; a test holds them to it.
 */
export const optionMinimums = {
  authTimeoutMilliseconds: 1,
  pingIntervalMilliseconds: 100,
  'cluster.nodeTimeoutMilliseconds': 500
} as const
export const defaultReconnectWindowMilliseconds = 0
export const defaultReplayMaxMessages = 100
/** How long replayed messages are kept when there is no reconnection window to keep them for. */
export const defaultReplayMaxAgeMilliseconds = 60_000
export const defaultLinkConflict = 'reject'
export const linkConflictModes: readonly string[] = ['reject', 'takeover']
export const replayOptionNames: readonly string[] = ['maxMessages', 'maxAgeMilliseconds']
export const defaultMetricsPath = '/metrics'
export const defaultHealthPath = '/health'
export const metricsOptionNames: readonly string[] = ['path', 'registry']
export const healthOptionNames: readonly string[] = ['path']
export const defaultCloseGraceMilliseconds = 1_000
