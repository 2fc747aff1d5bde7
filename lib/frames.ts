import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/** Any frame: a JSON object with a string `type` and an optional `payload`. */
export const FrameSchema = Type.Object({
  type: Type.String(),
  payload: Type.Optional(Type.Unknown())
})
export type Frame = Static<typeof FrameSchema>

/**
 * The session extension a client asks for in its link request (`docs/protocol.md#the-session-extension`): the user
 * (its join order) and the number of the last message it received from it, when it was linked to it before.
 */
export const LinkSessionSchema = Type.Object({
  user: Type.Optional(Type.Integer({ minimum: 0 })),
  last: Type.Optional(Type.Integer({ minimum: 0 }))
})
export type LinkSession = Static<typeof LinkSessionSchema>

/** The payload of `krmx/link`. */
export const LinkPayloadSchema = Type.Object({
  username: Type.String(),
  version: Type.String(),
  auth: Type.Optional(Type.String()),
  session: Type.Optional(LinkSessionSchema)
})
export type LinkPayload = Static<typeof LinkPayloadSchema>

// Compiled once when this module loads; per frame only `Check` runs.
const frameCheck = TypeCompiler.Compile(FrameSchema)
const linkPayloadCheck = TypeCompiler.Compile(LinkPayloadSchema)

export const protocolPrefix = 'krmx/'
export const linkType = 'krmx/link'
export const unlinkType = 'krmx/unlink'
export const leaveType = 'krmx/leave'
/** With the session extension: a linked client asks whether the connection still carries (a browser cannot see pings). */
export const pingType = 'krmx/ping'

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
 * through ws (one with a compression extension), made when asked for: most frames never need it, and a
 * user keeps two of them for its life.
 */
export class EncodedFrame {
  readonly bytes: Buffer
  constructor (bytes: Buffer) {
    this.bytes = bytes
  }

  get payload (): Buffer {
    const length = this.bytes[1]
    return this.bytes.subarray(length < 126 ? 2 : length === 126 ? 4 : 10)
  }
}

/** Encodes `text` as one unmasked, final WebSocket text frame, as a server sends it. */
export function encodeText (text: string): EncodedFrame {
  const length = Buffer.byteLength(text)
  const bytes = Buffer.allocUnsafe(frameLength(length))
  writeText(bytes, 0, text, length)
  return new EncodedFrame(bytes)
}

/**
 * The frame of an application message with its number for a session client, in three parts to be written one after
 * the other: a header for the new length, the message's JSON object but its closing brace (the same bytes, not a
 * copy), and `,"seq":<number>}` (last, so that it wins over a `seq` of the application's own). `undefined` for a
 * message whose JSON is not an object with members, which goes as it is, unnumbered (`send` makes none: it refuses a
 * message whose `toJSON` makes something else).
 */
export function numberedParts (frame: EncodedFrame, number: number): [Buffer, Buffer, Buffer] | undefined {
  const payload = frame.payload
  if (payload.length <= 2 || payload[payload.length - 1] !== closeBrace) {
    return undefined
  }
  const suffix = Buffer.from(`,"seq":${number}}`)
  const length = payload.length - 1 + suffix.length
  const header = Buffer.allocUnsafe(frameLength(length) - length)
  writeText(header, 0, '', length)
  return [header, payload.subarray(0, payload.length - 1), suffix]
}

/** The same frame in one buffer (a copy), for a socket that goes through ws; the message itself when it goes unnumbered. */
export function numberedFrame (frame: EncodedFrame, number: number): EncodedFrame {
  const parts = numberedParts(frame, number)
  return parts === undefined ? frame : new EncodedFrame(Buffer.concat(parts))
}

/** The length of a server frame of `length` payload bytes. */
function frameLength (length: number): number {
  return (length < 126 ? 2 : length < 65_536 ? 4 : 10) + length
}

/**
 * Writes a server text frame header for `length` payload bytes into `bytes` at `offset`, then `text` (which may be
 * the start of the payload only); returns the offset after `text`.
 */
function writeText (bytes: Buffer, offset: number, text: string, length: number): number {
  bytes[offset] = 0x81
  let header = 2
  if (length < 126) {
    bytes[offset + 1] = length
  } else if (length < 65_536) {
    bytes[offset + 1] = 126
    bytes.writeUInt16BE(length, offset + 2)
    header = 4
  } else {
    bytes[offset + 1] = 127
    bytes.writeUInt32BE(0, offset + 2)
    bytes.writeUIntBE(length, offset + 4, 6)
    header = 10
  }
  return offset + header + bytes.write(text, offset + header)
}

/**
 * The `krmx/joined` and `krmx/linked` frames of `username`, one after the other in one buffer (one object
 * on the heap, not two), and where the first ends. A user keeps them for its life.
 */
export function userFrames (username: string): { bytes: Buffer, joinedEnd: number } {
  const joined = JSON.stringify({ type: 'krmx/joined', payload: { username } })
  const linked = JSON.stringify({ type: 'krmx/linked', payload: { username } })
  const joinedLength = Buffer.byteLength(joined)
  const linkedLength = Buffer.byteLength(linked)
  const joinedEnd = frameLength(joinedLength)
  const bytes = Buffer.allocUnsafe(joinedEnd + frameLength(linkedLength))
  writeText(bytes, writeText(bytes, 0, joined, joinedLength), linked, linkedLength)
  return { bytes, joinedEnd }
}

export const acceptedFrame = encodeText(JSON.stringify({ type: 'krmx/accepted' }))

/**
 * The `krmx/accepted` of a link that asked for the session extension: the user's join order, and with replay on the
 * number of the last message before the first one this connection is sent.
 */
export function sessionAcceptedFrame (user: number, last: number | undefined): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/accepted', payload: { session: { user, last } } }))
}

/** The answer to `krmx/ping`. */
export const pongFrame = encodeText(JSON.stringify({ type: 'krmx/pong' }))

export function rejectedFrame (reason: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/rejected', payload: { reason } }))
}

export function unlinkedFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/unlinked', payload: { username } }))
}

export function leftFrame (username: string): EncodedFrame {
  return encodeText(JSON.stringify({ type: 'krmx/left', payload: { username } }))
}
