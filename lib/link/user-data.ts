import type { FastifyBaseLogger } from 'fastify'

/** What `encodeUserData` answers for data that cannot be attached. */
export const kUnencodable = Symbol('fastify-link-server.unencodable')

/**
 * The JSON of the data an authentication attached; data that is not JSON, or larger than `maxPayload` bytes,
 * fails the link (it would be sent to every node, and kept in Redis).
 */
export function encodeUserData (
  log: FastifyBaseLogger, username: string, attached: { data: unknown } | undefined, maxPayload: number
): string | undefined | typeof kUnencodable {
  if (attached === undefined) {
    return undefined
  }
  let text: string | undefined
  let err: unknown
  try {
    text = JSON.stringify(attached.data) // undefined for a function or undefined
  } catch (caught) {
    err = caught // a BigInt, a cycle, a toJSON that throws
  }
  if (text === undefined) {
    log.error({ err, username }, 'the data attached to the link is not JSON; the link is rejected')
    return kUnencodable
  }
  const bytes = Buffer.byteLength(text) // bytes, not characters: what Redis, the log and the frames hold
  if (bytes > maxPayload) {
    log.error({ username, bytes }, 'the data attached to the link is larger than maxPayload; the link is rejected')
    return kUnencodable
  }
  return text
}
