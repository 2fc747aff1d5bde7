import type { AsyncApiDocument, LinkServerOptions } from '../types/index.js'
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
const minimumAuthTimeoutMilliseconds = 1
const minimumPingIntervalMilliseconds = 100

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
}

/** Checks every option and applies the defaults; throws `FST_LINK_INVALID_OPTION` on the first wrong one. */
export function resolveOptions (options: LinkServerOptions): ResolvedOptions {
  return {
    path: resolvePath('path', options.path, defaultPath) as string,
    acceptNewUsers: resolveBoolean('acceptNewUsers', options.acceptNewUsers, defaultAcceptNewUsers),
    authTimeoutMilliseconds: Math.max(
      minimumAuthTimeoutMilliseconds,
      resolveMilliseconds('authTimeoutMilliseconds', options.authTimeoutMilliseconds, defaultAuthTimeoutMilliseconds)
    ),
    isValidUsername: resolveIsValidUsername(options.isValidUsername),
    pingIntervalMilliseconds: resolvePingInterval(options.pingIntervalMilliseconds),
    acceptedVersions: resolveAcceptedVersions(options.acceptedVersions),
    messages: compileMessageSchemas('messages', options.messages),
    serverMessages: compileMessageSchemas('serverMessages', options.serverMessages),
    strictMessages: resolveBoolean('strictMessages', options.strictMessages, defaultStrictMessages),
    invalidMessage: resolveInvalidMessage(options.invalidMessage),
    ...resolveAsyncApi(options.asyncapi)
  }
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
  if (value === undefined) {
    return { asyncapiPath: undefined, asyncapiInfo: { title: defaultAsyncApiTitle, version: defaultAsyncApiVersion } }
  }
  if (typeof value !== 'object' || value === null) {
    throw new FST_LINK_INVALID_OPTION('asyncapi', 'must be an object { path?, info? }')
  }
  const { path, info = {} } = value as { path?: unknown, info?: unknown }
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

function resolvePingInterval (value: unknown): number {
  const interval = resolveMilliseconds('pingIntervalMilliseconds', value, defaultPingIntervalMilliseconds)
  if (interval < 0) {
    throw new FST_LINK_INVALID_OPTION('pingIntervalMilliseconds', 'must be 0 (off) or a positive number of milliseconds')
  }
  if (interval === 0) {
    return 0
  }
  return Math.max(minimumPingIntervalMilliseconds, interval)
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
