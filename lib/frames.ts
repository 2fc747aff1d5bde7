import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/** Any frame: a JSON object with a string `type` and an optional `payload`. */
export const FrameSchema = Type.Object({
  type: Type.String(),
  payload: Type.Optional(Type.Unknown())
})
export type Frame = Static<typeof FrameSchema>

/** The payload of `krmx/link`. */
export const LinkPayloadSchema = Type.Object({
  username: Type.String(),
  version: Type.String(),
  auth: Type.Optional(Type.String())
})
export type LinkPayload = Static<typeof LinkPayloadSchema>

// Compiled once when this module loads; per frame only `Check` runs.
const frameCheck = TypeCompiler.Compile(FrameSchema)
const linkPayloadCheck = TypeCompiler.Compile(LinkPayloadSchema)

export const protocolPrefix = 'krmx/'
export const linkType = 'krmx/link'
export const unlinkType = 'krmx/unlink'
export const leaveType = 'krmx/leave'

/** Marks a parsed frame that is nested deeper than the limit: no schema is run on it. */
export const kTooDeep = Symbol('fastify-link-server.tooDeep')

/**
 * Parses one incoming WebSocket frame; `undefined` for anything that is not a text frame holding a
 * valid frame object. A frame nested deeper than `maxDepth` (the frame object itself is level 1) is
 * marked with `kTooDeep`: JSON.parse does not recurse, but a recursive schema or listener would.
 */
export function parseFrame (data: Buffer, isBinary: boolean, maxDepth: number): Frame | undefined {
  if (isBinary) {
    return undefined
  }
  let value: unknown
  try {
    value = JSON.parse(data.toString())
  } catch {
    return undefined
  }
  if (!frameCheck.Check(value)) {
    return undefined
  }
  if (isDeeperThan(data, maxDepth)) {
    (value as Frame & { [kTooDeep]?: true })[kTooDeep] = true
  }
  return value
}

const openBrace = 0x7b
const openBracket = 0x5b
const closeBrace = 0x7d
const closeBracket = 0x5d
const quote = 0x22
const backslash = 0x5c

/** Whether the valid JSON text in `data` nests objects and arrays deeper than `maxDepth`, counted on the bytes, without recursion. */
export function isDeeperThan (data: Buffer, maxDepth: number): boolean {
  // Each level takes two bytes at least, so a short frame cannot be too deep: most frames are never scanned.
  if (data.length <= 2 * maxDepth) {
    return false
  }
  let depth = 0
  let inString = false
  for (let index = 0; index < data.length; index++) {
    const byte = data[index]
    if (inString) {
      if (byte === backslash) {
        index++
      } else if (byte === quote) {
        inString = false
      }
    } else if (byte === quote) {
      inString = true
    } else if (byte === openBrace || byte === openBracket) {
      if (++depth > maxDepth) {
        return true
      }
    } else if (byte === closeBrace || byte === closeBracket) {
      depth--
    }
  }
  return false
}

/** Whether `value` is a valid `krmx/link` payload. */
export function isLinkPayload (value: unknown): value is LinkPayload {
  return linkPayloadCheck.Check(value)
}

/** Whether `value` is something the application may send: an object with a string `type`. */
export function isFrame (value: unknown): value is Frame {
  return frameCheck.Check(value)
}

/** Whether `type` is reserved for the protocol. */
export function isProtocolType (type: string): boolean {
  return type.startsWith(protocolPrefix)
}

/**
 * A server text frame, encoded once: `bytes` is the whole WebSocket frame (header and payload), which
 * can be written to any number of sockets as it is; `payload` is its text, for a socket that must go
 * through ws (one with a compression extension).
 */
export interface EncodedFrame {
  bytes: Buffer
  payload: Buffer
}

/** Encodes `text` as one unmasked, final WebSocket text frame, as a server sends it. */
export function encodeText (text: string): EncodedFrame {
  const payload = Buffer.from(text)
  const length = payload.length
  let header: Buffer
  if (length < 126) {
    header = Buffer.from([0x81, length])
  } else if (length < 65_536) {
    header = Buffer.from([0x81, 126, length >> 8, length & 0xff])
  } else {
    header = Buffer.alloc(10)
    header[0] = 0x81
    header[1] = 127
    header.writeUIntBE(length, 4, 6)
  }
  const bytes = Buffer.concat([header, payload])
  return { bytes, payload: bytes.subarray(header.length) }
}

export const acceptedFrame = encodeText(JSON.stringify({ type: 'krmx/accepted' }))

export function rejectedFrame (reason: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/rejected', payload: { reason } }))
}

export function joinedFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/joined', payload: { username } }))
}

export function linkedFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/linked', payload: { username } }))
}

export function unlinkedFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/unlinked', payload: { username } }))
}

export function leftFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/left', payload: { username } }))
}
