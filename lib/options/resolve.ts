import type { FastifyRequest } from 'fastify'
import type { AsyncApiDocument, ClusterRedisClient, LinkServerOptions, MetricsRegistry, RateLimitOptions } from '../../types/index.js'
import { FST_LINK_INVALID_OPTION } from '../errors.js'
import { compileMessageSchemas, type MessageChecks } from '../messages/schemas.js'
import { isValidDefaultRoom, isValidKrmxUsername } from '../username.js'
import { isVersionRange } from '../link/version.js'
import {
  defaultAcceptNewRooms,
  defaultAcceptNewUsers,
  defaultAcceptedVersions,
  defaultAsyncApiTitle,
  defaultAsyncApiVersion,
  defaultAuthTimeoutMilliseconds,
  defaultCloseGraceMilliseconds,
  defaultInvalidMessage,
  defaultLinkTimeoutMilliseconds,
  defaultMaxBufferedBytes,
  defaultMaxConnections,
  defaultMaxDepth,
  defaultMaxLinkAttempts,
  defaultMaxPayload,
  defaultMaxQueuedBytes,
  defaultMaxQueuedFrames,
  defaultMaxRooms,
  defaultMaxUsers,
  defaultPath,
  defaultPingIntervalMilliseconds,
  defaultRateLimit,
  defaultStrictMessages,
  invalidMessageModes,
  optionMinimums
} from './defaults.js'
import { resolveCluster, resolveHealth, resolveMetrics, resolveSessions } from './groups.js'
import { refuseUnknownNames } from './names.js'
import { resolveBoolean, resolveCount, resolveMilliseconds, resolveOff, resolvePath, resolveText, resolveTimer } from './values.js'

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
  /** Whether the path has a `:room` parameter: a connection belongs to the room its URL names. */
  rooms: boolean
  isValidRoom: (room: string) => boolean
  /** `Infinity` with rooms off. */
  maxRooms: number
  acceptNewRooms: boolean
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
  /** Whether rooms are on (a `:room` parameter in the path). */
  rooms: boolean
}

/** The options `register` itself takes, which Fastify passes on with the plugin's own. */

/**
 * Checks every option and applies the defaults; throws `FST_LINK_INVALID_OPTION` on the first wrong
 * one. A value out of range is refused, never clamped: a typo must not silently change what it means.
 */
export function resolveOptions (options: LinkServerOptions): ResolvedOptions {
  refuseUnknownNames(options)
  const path = resolvePath('path', options.path, defaultPath) as string
  const rooms = roomParameter.test(path)
  const maxRooms = resolveCount('maxRooms', options.maxRooms, defaultMaxRooms, true)
  return {
    path,
    acceptNewUsers: resolveBoolean('acceptNewUsers', options.acceptNewUsers, defaultAcceptNewUsers),
    authTimeoutMilliseconds: resolveAuthTimeout(options.authTimeoutMilliseconds),
    isValidUsername: resolvePredicate('isValidUsername', options.isValidUsername, isValidKrmxUsername, '(username) => boolean'),
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
    rooms,
    isValidRoom: resolvePredicate('isValidRoom', options.isValidRoom, isValidDefaultRoom, '(room) => boolean'),
    maxRooms: rooms ? maxRooms : Infinity, // checked either way: a wrong value is a mistake even where it does nothing
    acceptNewRooms: resolveBoolean('acceptNewRooms', options.acceptNewRooms, defaultAcceptNewRooms),
    isAllowedOrigin: resolveAllowedOrigins(options.allowedOrigins),
    maxBufferedBytes: resolveCount('maxBufferedBytes', options.maxBufferedBytes, defaultMaxBufferedBytes, true),
    maxDepth: resolveCount('maxDepth', options.maxDepth, defaultMaxDepth, false),
    maxQueuedFrames: resolveCount('maxQueuedFrames', options.maxQueuedFrames, defaultMaxQueuedFrames, false),
    maxQueuedBytes: resolveCount('maxQueuedBytes', options.maxQueuedBytes, defaultMaxQueuedBytes, false),
    cluster: resolveRoomsCluster(rooms, resolveCluster(options.cluster)),
    sessions: resolveSessions(options),
    metrics: resolveMetrics(options.metrics),
    healthPath: resolveHealth(options.health),
    closeGraceMilliseconds: resolveCloseGrace(options.closeGraceMilliseconds)
  }
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

/** The cluster options, told whether rooms are on (each room's keys are then under a hash tag of its own). */
function resolveRoomsCluster (rooms: boolean, cluster: Omit<ResolvedClusterOptions, 'rooms'> | undefined): ResolvedClusterOptions | undefined {
  return cluster === undefined ? undefined : { ...cluster, rooms }
}

/** A `:room` parameter in the route's path: rooms are on. */
const roomParameter = /(^|\/):room(\/|$)/

function resolvePredicate (name: string, value: unknown, fallback: (name: string) => boolean, signature: string): (name: string) => boolean {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'function') {
    throw new FST_LINK_INVALID_OPTION(name, `must be a function ${signature}`)
  }
  return value as (name: string) => boolean
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

function resolveCloseGrace (value: unknown): number {
  const grace = resolveTimer('closeGraceMilliseconds', resolveMilliseconds('closeGraceMilliseconds', value, defaultCloseGraceMilliseconds))
  if (grace < 0) {
    throw new FST_LINK_INVALID_OPTION('closeGraceMilliseconds', 'must be 0 or a positive number of milliseconds')
  }
  return grace
}
