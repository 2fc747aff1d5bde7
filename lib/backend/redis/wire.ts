import { leaveCauses, unlinkCauses } from '../../counts.js'
import type { Change, LeaveCause, UnlinkCause } from '../backend.js'

/**
 * What nodes write to each other through Redis, defined once: the publications (written here, and by the `post`
 * script with `luaNumberedDelivery`) and the records of the log (written by the scripts' `append`, read by `changeOf`).
 */

/**
 * The version of what nodes publish to each other, the first line of every publication: a node drops (and says
 * why) what a node of another version published, so that a rolling deploy across a change of it fails loudly
 * instead of delivering what it misreads.
 */
export const wireVersion = 'v1'

/** A message to one user of a node (replay off): the version, the username in JSON, the frame. */
export function deliveryOf (username: string, text: string): string {
  return `${wireVersion}\n${JSON.stringify(username)}\n${text}`
}

/**
 * The Lua expression of a message with replay on, which the `post` script publishes to a node: the version, the
 * recipients as JSON (`[username, number, ...]`, the Lua table `recipients`), the frame (the Lua string `frame`).
 */
export function luaNumberedDelivery (recipients: string, frame: string): string {
  return `'${wireVersion}\\n' .. cjson.encode(${recipients}) .. '\\n' .. ${frame}`
}

/** A broadcast: the version, the sending node (which skips its own), the user to skip in JSON or nothing, the frame. */
export function broadcastOf (sender: string, skip: string | undefined, text: string): string {
  return `${wireVersion}\n${sender}\n${skip === undefined ? '' : JSON.stringify(skip)}\n${text}`
}

/** A publication as read: its frame for users of this node, or why it is refused. */
export type Publication =
  | { kind: 'deliver', text: string, recipients: string | Array<string | number> }
  | { kind: 'broadcast', text: string, skip: string | undefined }
  | { kind: 'own' }
  | { kind: 'refused', reason: string }

/**
 * Reads a publication of the node's own channel (`toNode`: a username, or with replay `[username, number, ...]`)
 * or of the broadcast channel; a broadcast that `self` sent is `own` (it reached this node's users already). Anyone
 * can PUBLISH to Redis: what does not parse as ours is refused, never delivered.
 */
export function readPublication (message: string, toNode: boolean, self: string): Publication {
  const lines = splitLines(message, toNode ? 3 : 4)
  if (lines?.[0] !== wireVersion) {
    const version = lines?.[0] ?? message.slice(0, message.indexOf('\n'))
    return refused(/^v\d+$/.test(version)
      ? `a node of wire format ${version} published it (this node speaks ${wireVersion}): run one version of fastify-link-server in a cluster`
      : 'it is not a publication of fastify-link-server (a foreign publisher, or a version before the wire format had one)')
  }
  const text = lines[lines.length - 1]
  if (!isApplicationFrame(text)) {
    return refused('its frame is not an application message')
  }
  if (toNode) {
    const recipients = parseJson(lines[1])
    return typeof recipients === 'string' || isNumberedRecipients(recipients)
      ? { kind: 'deliver', text, recipients }
      : refused('its recipients are not a username or [username, number, ...]')
  }
  if (lines[1] === self) {
    return { kind: 'own' }
  }
  const skip = lines[2] === '' ? undefined : parseJson(lines[2])
  if (skip !== undefined && typeof skip !== 'string') {
    return refused('the user it skips is not a username')
  }
  return { kind: 'broadcast', text, skip }
}

function refused (reason: string): Publication {
  return { kind: 'refused', reason }
}

/** The change a log record holds, or `undefined` for a record that is not one (a foreign writer's). */
export function changeOf (fields: string[], seq: number): Change | undefined {
  const value = new Map<string, string>() // XADD stores field and value pairs of strings
  for (let i = 0; i < fields.length; i += 2) {
    value.set(fields[i], fields[i + 1])
  }
  const username = value.get('u')
  const origin = value.get('o')
  if (!isText(username) || typeof origin !== 'string') {
    return undefined
  }
  const generation = Number(value.get('g'))
  const cause = value.get('c')
  switch (value.get('op')) {
    case 'link': {
      const node = value.get('n')
      const token = value.get('t')
      const data = value.get('d')
      if (!isText(node) || !isText(token) || !isGeneration(generation)) {
        return undefined
      }
      return { op: 'link', username, origin, node, generation, token, isNewUser: value.get('new') === '1', data }
    }
    case 'unlink':
      return isGeneration(generation) && unlinkCauses.includes(cause as UnlinkCause)
        ? { op: 'unlink', username, origin, generation, cause: cause as UnlinkCause }
        : undefined
    case 'join':
      return { op: 'join', username, origin, order: seq }
    case 'leave':
      return leaveCauses.includes(cause as LeaveCause) ? { op: 'leave', username, origin, cause: cause as LeaveCause } : undefined
    default:
      return undefined
  }
}

function isText (value: unknown): value is string {
  return typeof value === 'string' && value !== ''
}

function isGeneration (value: number): boolean {
  return Number.isSafeInteger(value) && value > 0
}

/** The first `count - 1` lines of `message`, and the rest as the last; `undefined` when it has fewer lines. */
function splitLines (message: string, count: number): string[] | undefined {
  const lines: string[] = []
  let start = 0
  for (let i = 1; i < count; i++) {
    const end = message.indexOf('\n', start)
    if (end === -1) {
      return undefined
    }
    lines.push(message.slice(start, end))
    start = end + 1
  }
  lines.push(message.slice(start))
  return lines
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** `[username, number, ...]`: the users of this node a message with replay is for, each with its number. */
function isNumberedRecipients (value: unknown): value is Array<string | number> {
  if (!Array.isArray(value) || value.length === 0 || value.length % 2 !== 0) {
    return false
  }
  for (let i = 0; i < value.length; i += 2) {
    if (!isText(value[i]) || !Number.isSafeInteger(value[i + 1]) || (value[i + 1] as number) < 0) {
      return false
    }
  }
  return true
}

/** Whether `text` is the JSON of an application message: an object whose type is a string outside `krmx/`. */
function isApplicationFrame (text: string): boolean {
  const frame = parseJson(text) as { type?: unknown } | null | undefined
  return typeof frame === 'object' && frame !== null && !Array.isArray(frame) && typeof frame.type === 'string' && !frame.type.startsWith('krmx/')
}
