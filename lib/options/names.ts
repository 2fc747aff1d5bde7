import type { LinkServerOptions } from '../../types/index.js'
import { FST_LINK_INVALID_OPTION } from '../errors.js'
import { clusterOptionNames } from './defaults.js'
import { closestName } from './suggest.js'

const registerOptions: readonly string[] = ['prefix', 'logLevel', 'logSerializers']

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
  isValidRoom: true,
  maxRooms: true,
  acceptNewRooms: true,
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

/** Refuses an option that does not exist, with the name it most likely meant. */
export function refuseUnknownNames (options: object): void {
  for (const name of Object.keys(options)) {
    if (clusterOptionNames.includes(name)) {
      throw new FST_LINK_INVALID_OPTION(name, `is an option of cluster mode: cluster: { ${name}: ... }`)
    }
    if (!optionNames.includes(name) && !registerOptions.includes(name)) {
      const closest = closestName(name, optionNames)
      throw new FST_LINK_INVALID_OPTION(name, closest === undefined
        ? `is not an option of fastify-link-server (its options: ${optionNames.join(', ')})`
        : `is not an option of fastify-link-server; did you mean "${closest}"?`)
    }
  }
}
