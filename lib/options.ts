import type { LinkServerOptions } from '../types/index.js'
import { FST_LINK_INVALID_OPTION } from './errors.js'
import { isValidKrmxUsername } from './username.js'
import { isVersionRange } from './version.js'

export const defaultPath = '/'
export const defaultAcceptNewUsers = true
export const defaultAuthTimeoutMilliseconds = 10_000
export const defaultPingIntervalMilliseconds = 15_000
export const defaultAcceptedVersions: readonly string[] = ['0.5.x', '0.6.x']
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
}

/** Checks every option and applies the defaults; throws `FST_LINK_INVALID_OPTION` on the first wrong one. */
export function resolveOptions (options: LinkServerOptions): ResolvedOptions {
  return {
    path: resolvePath(options.path),
    acceptNewUsers: resolveBoolean('acceptNewUsers', options.acceptNewUsers, defaultAcceptNewUsers),
    authTimeoutMilliseconds: Math.max(
      minimumAuthTimeoutMilliseconds,
      resolveMilliseconds('authTimeoutMilliseconds', options.authTimeoutMilliseconds, defaultAuthTimeoutMilliseconds)
    ),
    isValidUsername: resolveIsValidUsername(options.isValidUsername),
    pingIntervalMilliseconds: resolvePingInterval(options.pingIntervalMilliseconds),
    acceptedVersions: resolveAcceptedVersions(options.acceptedVersions)
  }
}

function resolvePath (path: unknown): string {
  if (path === undefined) {
    return defaultPath
  }
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new FST_LINK_INVALID_OPTION('path', 'must be a string that starts with "/"')
  }
  return path
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
