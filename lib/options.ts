import type { FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { AsyncApiDocument, ClusterRedisClient, LinkServerOptions, MetricsRegistry, RateLimitOptions } from '../types/index.js'
import { FST_LINK_INVALID_OPTION } from './errors.js'
import { compileMessageSchemas, type MessageChecks } from './messages.js'
import { isValidKrmxUsername } from './username.js'
import { isVersionRange } from './version.js'

export const defaultPath = '/'
export const defaultAcceptNewUsers = true
export const defaultAuthTimeoutMilliseconds = 10_000
export const defaultPingIntervalMilliseconds = 15_000
export const defaultAcceptedVersions: readonly string[] = ['0.5.x', '0.6.x']
export const defaultStrictMessages = false
export const defaultInvalidMessage = 'drop'
export const defaultAsyncApiTitle = 'fastify-link-server'
export const defaultAsyncApiVersion = '0.0.0'
const invalidMessageModes: readonly string[] = ['drop', 'unlink']
export const defaultMaxPayload = 64 * 1024
export const defaultLinkTimeoutMilliseconds = 30_000
export const defaultMaxLinkAttempts = 10
export const defaultRateLimit: RateLimitOptions = { rate: 100, burst: 200 }
export const defaultMaxUsers = 10_000
export const defaultMaxConnections = 10_000
export const defaultMaxBufferedBytes = 4 * 1024 * 1024
export const defaultMaxDepth = 64
export const defaultMaxQueuedFrames = 32
export const defaultMaxQueuedBytes = 2 * defaultMaxPayload
/** Node's timers take at most a signed 32-bit number of milliseconds (about 24.8 days); a larger delay becomes 1 ms. */
export const maximumTimerMilliseconds = 2 ** 31 - 1
export const defaultNamespace = 'fastify-link-server'
export const defaultNodeTimeoutMilliseconds = 10_000
const clusterOptionNames: readonly string[] = ['redis', 'namespace', 'nodeId', 'nodeTimeoutMilliseconds']
/** Ids and namespaces go into Redis keys, channels and the messages between nodes: no braces, separators or spaces. */
const clusterNamePattern = /^[A-Za-z0-9._:-]{1,100}$/
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
const linkConflictModes: readonly string[] = ['reject', 'takeover']
const replayOptionNames: readonly string[] = ['maxMessages', 'maxAgeMilliseconds']
export const defaultMetricsPath = '/metrics'
export const defaultHealthPath = '/health'
const metricsOptionNames: readonly string[] = ['path', 'registry']
const healthOptionNames: readonly string[] = ['path']
export const defaultCloseGraceMilliseconds = 1_000

/** The options with every default applied and every value checked. */
export interface ResolvedOptions {
  path: string
  acceptNewUsers: boolean
  authTimeoutMilliseconds: number
  isValidUsername: (username: string) => boolean
  pingIntervalMilliseconds: number
  acceptedVersions: readonly string[]
  messages: MessageChecks | undefined
  serverMessages: MessageChecks | undefined
  strictMessages: boolean
  invalidMessage: 'drop' | 'unlink'
  /** The route of the AsyncAPI document, if any. */
  asyncapiPath: string | undefined
  asyncapiInfo: AsyncApiDocument['info']
  maxPayload: number
  /** `0`: off. */
  linkTimeoutMilliseconds: number
  /** `Infinity`: off. */
  maxLinkAttempts: number
  rateLimit: RateLimitOptions | undefined
  maxUsers: number
  maxConnections: number
  /** `undefined`: every origin. */
  isAllowedOrigin: ((origin: string | undefined, request: FastifyRequest) => boolean) | undefined
  maxBufferedBytes: number
  maxDepth: number
  maxQueuedFrames: number
  maxQueuedBytes: number
  /** `undefined`: the in-memory backend. */
  cluster: ResolvedClusterOptions | undefined
  sessions: Sessions
  /** `undefined`: off. */
  metrics: ResolvedMetrics | undefined
  /** The prefix of the health endpoints; `undefined`: off. */
  healthPath: string | undefined
  closeGraceMilliseconds: number
}

export interface ResolvedMetrics {
  /** `undefined`: not served. */
  path: string | undefined
  /** `undefined`: a registry of the plugin's own. */
  registry: MetricsRegistry | undefined
}

/** What keeps a user's session across its connections: the reconnection window, replay and takeover. */
export interface Sessions {
  /** An unlinked user leaves this long after its link ended; `0`: never. */
  windowMilliseconds: number
  /** `undefined`: off. */
  replay: ResolvedReplay | undefined
  /** Whether a link to a linked user takes it over (`linkConflict: 'takeover'`). */
  takeover: boolean
}

export interface ResolvedReplay {
  maxMessages: number
  maxAgeMilliseconds: number
}

/** The `cluster` option, checked and with its defaults. */
export interface ResolvedClusterOptions {
  redis: string | ClusterRedisClient
  namespace: string
  nodeId: string
  nodeTimeoutMilliseconds: number
}

/** The options `register` itself takes, which Fastify passes on with the plugin's own. */
const registerOptions: readonly string[] = ['prefix', 'logLevel', 'logSerializers']

/**
 * Checks every option and applies the defaults; throws `FST_LINK_INVALID_OPTION` on the first wrong
 * one. A value out of range is refused, never clamped: a typo must not silently change what it means.
 */
export function resolveOptions (options: LinkServerOptions): ResolvedOptions {
  refuseUnknownNames(options)
  return {
    path: resolvePath('path', options.path, defaultPath) as string,
    acceptNewUsers: resolveBoolean('acceptNewUsers', options.acceptNewUsers, defaultAcceptNewUsers),
    authTimeoutMilliseconds: resolveAuthTimeout(options.authTimeoutMilliseconds),
    isValidUsername: resolveIsValidUsername(options.isValidUsername),
    pingIntervalMilliseconds: resolvePingInterval(options.pingIntervalMilliseconds),
    acceptedVersions: resolveAcceptedVersions(options.acceptedVersions),
    messages: compileMessageSchemas('messages', options.messages),
    serverMessages: compileMessageSchemas('serverMessages', options.serverMessages),
    strictMessages: resolveBoolean('strictMessages', options.strictMessages, defaultStrictMessages),
    invalidMessage: resolveInvalidMessage(options.invalidMessage),
    ...resolveAsyncApi(options.asyncapi),
    maxPayload: resolveCount('maxPayload', options.maxPayload, defaultMaxPayload, false),
    linkTimeoutMilliseconds: resolveTimer('linkTimeoutMilliseconds',
      resolveOff('linkTimeoutMilliseconds', options.linkTimeoutMilliseconds, defaultLinkTimeoutMilliseconds, 0)),
    maxLinkAttempts: resolveOff('maxLinkAttempts', options.maxLinkAttempts, defaultMaxLinkAttempts, Infinity),
    rateLimit: resolveRateLimit(options.rateLimit),
    maxUsers: resolveCount('maxUsers', options.maxUsers, defaultMaxUsers, true),
    maxConnections: resolveCount('maxConnections', options.maxConnections, defaultMaxConnections, true),
    isAllowedOrigin: resolveAllowedOrigins(options.allowedOrigins),
    maxBufferedBytes: resolveCount('maxBufferedBytes', options.maxBufferedBytes, defaultMaxBufferedBytes, true),
    maxDepth: resolveCount('maxDepth', options.maxDepth, defaultMaxDepth, false),
    maxQueuedFrames: resolveCount('maxQueuedFrames', options.maxQueuedFrames, defaultMaxQueuedFrames, false),
    maxQueuedBytes: resolveCount('maxQueuedBytes', options.maxQueuedBytes, defaultMaxQueuedBytes, false),
    cluster: resolveCluster(options.cluster),
    sessions: resolveSessions(options),
    metrics: resolveMetrics(options.metrics),
    healthPath: resolveHealth(options.health),
    closeGraceMilliseconds: resolveCloseGrace(options.closeGraceMilliseconds)
  }
}

/**
 * Every option, as a record so that TypeScript requires each option of `LinkServerOptions` here, and
 * no other: the check of unknown names cannot drift from the options there are.
 */
const knownOptions: Record<keyof LinkServerOptions, true> = {
  path: true,
  acceptNewUsers: true,
  authTimeoutMilliseconds: true,
  isValidUsername: true,
  pingIntervalMilliseconds: true,
  acceptedVersions: true,
  messages: true,
  serverMessages: true,
  strictMessages: true,
  invalidMessage: true,
  asyncapi: true,
  maxPayload: true,
  linkTimeoutMilliseconds: true,
  maxLinkAttempts: true,
  rateLimit: true,
  maxUsers: true,
  maxConnections: true,
  allowedOrigins: true,
  maxBufferedBytes: true,
  maxDepth: true,
  maxQueuedFrames: true,
  maxQueuedBytes: true,
  cluster: true,
  reconnectWindowMilliseconds: true,
  replay: true,
  linkConflict: true,
  metrics: true,
  health: true,
  closeGraceMilliseconds: true
}

/** The name of every option, for the check of unknown names. */
export const optionNames: readonly string[] = Object.keys(knownOptions)

function refuseUnknownNames (options: object): void {
  for (const name of Object.keys(options)) {
    if (clusterOptionNames.includes(name)) {
      throw new FST_LINK_INVALID_OPTION(name, `is an option of cluster mode: cluster: { ${name}: ... }`)
    }
    if (!optionNames.includes(name) && !registerOptions.includes(name)) {
      const closest = closestName(name)
      throw new FST_LINK_INVALID_OPTION(name, closest === undefined
        ? `is not an option of fastify-link-server (its options: ${optionNames.join(', ')})`
        : `is not an option of fastify-link-server; did you mean "${closest}"?`)
    }
  }
}

/**
 * The option name `name` most likely meant: the nearest by edit distance when it is a typo (`pathh`,
 * `maxusers`), else the one it shortens (`pingIntervalMs`), if any.
 */
function closestName (name: string): string | undefined {
  const typed = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  let longestPrefix = Math.max(4, Math.ceil(typed.length * 2 / 3)) - 1
  let shortened: string | undefined
  for (const candidate of optionNames) {
    const lower = candidate.toLowerCase()
    const distance = editDistance(typed, lower)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
    const prefix = commonPrefixLength(typed, lower)
    if (prefix > longestPrefix) {
      shortened = candidate
      longestPrefix = prefix
    }
  }
  return best ?? shortened
}

function commonPrefixLength (a: string, b: string): number {
  let length = 0
  while (length < a.length && a[length] === b[length]) {
    length++
  }
  return length
}

/** Levenshtein distance: the fewest insertions, deletions and substitutions that turn `a` into `b`. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]
}

/** A positive integer (or `Infinity` where `unbounded` is allowed). */
function resolveCount (name: string, value: unknown, fallback: number, unbounded: boolean): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || value < 1 || !(Number.isInteger(value) || (unbounded && value === Infinity))) {
    throw new FST_LINK_INVALID_OPTION(name, unbounded ? 'must be a positive integer or Infinity' : 'must be a positive integer')
  }
  return value
}

/** A positive integer, or `0` for off, which becomes `off`. */
function resolveOff (name: string, value: unknown, fallback: number, off: number): number {
  if (value === 0) {
    return off
  }
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be 0 (off) or a positive integer')
  }
  return value
}

function resolveRateLimit (value: unknown): RateLimitOptions | undefined {
  if (value === false) {
    return undefined
  }
  if (value === undefined) {
    return defaultRateLimit
  }
  const { rate, burst } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  if (typeof rate !== 'number' || !(rate > 0) || rate === Infinity || typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1) {
    throw new FST_LINK_INVALID_OPTION('rateLimit', 'must be false or { rate: frames per second > 0, burst: integer >= 1 }')
  }
  return { rate, burst }
}

function resolveAllowedOrigins (value: unknown): ResolvedOptions['isAllowedOrigin'] {
  if (value === undefined) {
    return undefined
  }
  if (typeof value === 'function') {
    return value as ResolvedOptions['isAllowedOrigin']
  }
  if (!Array.isArray(value) || !value.every(origin => typeof origin === 'string')) {
    throw new FST_LINK_INVALID_OPTION('allowedOrigins', 'must be an array of origins like "https://example.com" or a function (origin, request) => boolean')
  }
  const origins = new Set<string>(value)
  // Browsers always send Origin with a WebSocket upgrade; a request without one is not from a browser page.
  return origin => origin === undefined || origins.has(origin)
}

function resolvePath (name: string, path: unknown, fallback: string | undefined): string | undefined {
  if (path === undefined) {
    return fallback
  }
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a string that starts with "/"')
  }
  return path
}

function resolveInvalidMessage (value: unknown): 'drop' | 'unlink' {
  if (value === undefined) {
    return defaultInvalidMessage
  }
  if (typeof value !== 'string' || !invalidMessageModes.includes(value)) {
    throw new FST_LINK_INVALID_OPTION('invalidMessage', 'must be "drop" or "unlink"')
  }
  return value as 'drop' | 'unlink'
}

function resolveAsyncApi (value: unknown): Pick<ResolvedOptions, 'asyncapiPath' | 'asyncapiInfo'> {
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw new FST_LINK_INVALID_OPTION('asyncapi', 'must be an object { path?, info? }')
  }
  const { path, info = {} } = (value ?? {}) as { path?: unknown, info?: unknown }
  if (typeof info !== 'object' || info === null) {
    throw new FST_LINK_INVALID_OPTION('asyncapi.info', 'must be an object { title?, version?, description? }')
  }
  const { title, version, description } = info as Record<string, unknown>
  return {
    asyncapiPath: resolvePath('asyncapi.path', path, undefined),
    asyncapiInfo: {
      title: resolveText('asyncapi.info.title', title, defaultAsyncApiTitle),
      version: resolveText('asyncapi.info.version', version, defaultAsyncApiVersion),
      ...(description === undefined ? {} : { description: resolveText('asyncapi.info.description', description, '') })
    }
  }
}

function resolveText (name: string, value: unknown, fallback: string): string {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a non-empty string')
  }
  return value
}

function resolveCluster (value: unknown): ResolvedClusterOptions | undefined {
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

function resolveRedis (value: unknown): string | ClusterRedisClient {
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

function resolveClusterName (name: string, value: unknown, fallback: string): string {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'string' || !clusterNamePattern.test(value)) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be 1 to 100 letters, digits or . _ : -')
  }
  return value
}

function resolveBoolean (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'boolean') {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a boolean')
  }
  return value
}

function resolveMilliseconds (name: string, value: unknown, fallback: number): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a finite number of milliseconds')
  }
  return value
}

/** A delay that Node's timers can keep: a larger one would fire at once. */
function resolveTimer (name: string, milliseconds: number): number {
  if (milliseconds > maximumTimerMilliseconds) {
    throw new FST_LINK_INVALID_OPTION(name, `must be at most ${maximumTimerMilliseconds} milliseconds (about 24.8 days), the longest delay Node's timers keep`)
  }
  return milliseconds
}

function resolvePingInterval (value: unknown): number {
  const interval = resolveTimer('pingIntervalMilliseconds', resolveMilliseconds('pingIntervalMilliseconds', value, defaultPingIntervalMilliseconds))
  if (interval !== 0 && interval < optionMinimums.pingIntervalMilliseconds) {
    throw new FST_LINK_INVALID_OPTION('pingIntervalMilliseconds', `must be 0 (off) or at least ${optionMinimums.pingIntervalMilliseconds} milliseconds`)
  }
  return interval
}

function resolveAuthTimeout (value: unknown): number {
  const timeout = resolveTimer('authTimeoutMilliseconds', resolveMilliseconds('authTimeoutMilliseconds', value, defaultAuthTimeoutMilliseconds))
  if (timeout < optionMinimums.authTimeoutMilliseconds) {
    throw new FST_LINK_INVALID_OPTION('authTimeoutMilliseconds', `must be at least ${optionMinimums.authTimeoutMilliseconds} millisecond`)
  }
  return timeout
}

function resolveIsValidUsername (value: unknown): (username: string) => boolean {
  if (value === undefined) {
    return isValidKrmxUsername
  }
  if (typeof value !== 'function') {
    throw new FST_LINK_INVALID_OPTION('isValidUsername', 'must be a function (username) => boolean')
  }
  return value as (username: string) => boolean
}

function resolveAcceptedVersions (value: unknown): readonly string[] {
  if (value === undefined) {
    return defaultAcceptedVersions
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every(isVersionRange)) {
    throw new FST_LINK_INVALID_OPTION('acceptedVersions', 'must be a non-empty array of versions like "0.6.x" or "0.6.3"')
  }
  return [...value]
}

function resolveSessions (options: LinkServerOptions): Sessions {
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

function resolveReplay (value: unknown, windowMilliseconds: number): ResolvedReplay | undefined {
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

/** An option that is an object of options of its own (`cluster`, `replay`): a plain object, with only the names it has. */
function resolveGroup (group: string, value: unknown, names: readonly string[], shape: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FST_LINK_INVALID_OPTION(group, shape)
  }
  for (const name of Object.keys(value)) {
    if (!names.includes(name)) {
      throw new FST_LINK_INVALID_OPTION(`${group}.${name}`, `is not a ${group} option (they are: ${names.join(', ')})`)
    }
  }
  return value as Record<string, unknown>
}

function resolveMetrics (value: unknown): ResolvedMetrics | undefined {
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

function resolveHealth (value: unknown): string | undefined {
  if (value === undefined || value === false) {
    return undefined
  }
  const health = value === true ? {} : resolveGroup('health', value, healthOptionNames, 'must be true or an object: { path?: string }')
  return resolvePath('health.path', health.path, defaultHealthPath)
}

function resolveCloseGrace (value: unknown): number {
  const grace = resolveTimer('closeGraceMilliseconds', resolveMilliseconds('closeGraceMilliseconds', value, defaultCloseGraceMilliseconds))
  if (grace < 0) {
    throw new FST_LINK_INVALID_OPTION('closeGraceMilliseconds', 'must be 0 or a positive number of milliseconds')
  }
  return grace
}
