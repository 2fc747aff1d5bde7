import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { AsyncApiDocument } from '../types/index.js'
import type { MessageChecks } from './messages/schemas.js'

/** What the AsyncAPI document is made of. */
export interface AsyncApiSource {
  /** The full URL path of the WebSocket route, prefix included. */
  address: string
  info: AsyncApiDocument['info']
  messages: MessageChecks | undefined
  serverMessages: MessageChecks | undefined
  strictMessages: boolean
}

type Action = 'receive' | 'send'

interface Entry {
  action: Action
  type: string
  summary: string
  /** The JSON schema of the payload; `undefined` for a message without one. */
  payload: Record<string, unknown> | undefined
  payloadRequired: boolean
}

const channel = 'link'
const counter = { type: 'integer', minimum: 0 }
/** The session extension's `{ user, last }`: what a client names in its link request, and the server in `krmx/accepted`. */
const sessionPayload = { type: 'object', properties: { user: counter, last: counter } }
const usernamePayload = { type: 'object', properties: { username: { type: 'string' } }, required: ['username'] }

// The frames of the protocol itself (see the protocol table of the README), from the server's side.
const protocolEntries: readonly Entry[] = [
  protocolEntry('receive', 'krmx/link', 'Link this connection to a user.', {
    type: 'object',
    properties: {
      username: { type: 'string' },
      version: { type: 'string' },
      auth: { type: 'string' },
      session: sessionPayload
    },
    required: ['username', 'version']
  }),
  protocolEntry('receive', 'krmx/unlink', 'Unlink the user of this connection; the connection stays open.'),
  protocolEntry('receive', 'krmx/leave', 'The user of this connection leaves the server.'),
  protocolEntry('receive', 'krmx/ping', 'Session extension: is the connection alive? Answered with krmx/pong.'),
  {
    ...protocolEntry('send', 'krmx/accepted', 'The link request of this connection was accepted.', {
      type: 'object', properties: { session: { ...sessionPayload, required: ['user'] } }
    }),
    payloadRequired: false // a payload only for a link that asked for the session extension
  },
  protocolEntry('send', 'krmx/pong', 'Session extension: the answer to krmx/ping.'),
  protocolEntry('send', 'krmx/rejected', 'The link request (or frame) of this unlinked connection was refused.', {
    type: 'object', properties: { reason: { type: 'string' } }, required: ['reason']
  }),
  protocolEntry('send', 'krmx/joined', 'A user joined the server.', usernamePayload),
  protocolEntry('send', 'krmx/linked', 'A user linked to a connection.', usernamePayload),
  protocolEntry('send', 'krmx/unlinked', 'A user lost its connection but still exists.', usernamePayload),
  protocolEntry('send', 'krmx/left', 'A user left the server.', usernamePayload)
]

function protocolEntry (action: Action, type: string, summary: string, payload?: Record<string, unknown>): Entry {
  return { action, type, summary, payload, payloadRequired: payload !== undefined }
}

/** Any application message, for the directions that have no schemas. */
function untypedEntry (action: Action, summary: string): Entry {
  return { action, type: '', summary, payload: {}, payloadRequired: false }
}

function schemaEntry (action: Action, type: string, check: TypeCheck<TSchema>): Entry {
  const schema = check.Schema()
  const payload = schema.type === 'undefined'
    ? undefined
    : JSON.parse(JSON.stringify(schema)) as Record<string, unknown> // without TypeBox's symbol keys
  return { action, type, summary: `Application message ${type}.`, payload, payloadRequired: !check.Check(undefined) }
}

/** Builds the AsyncAPI 3.0 document of the endpoint, from the server's point of view. */
export function buildAsyncApi (source: AsyncApiSource): AsyncApiDocument {
  const entries = [...protocolEntries]
  for (const [action, checks] of [['receive', source.messages], ['send', source.serverMessages]] as const) {
    for (const [type, check] of checks ?? []) {
      entries.push(schemaEntry(action, type, check))
    }
  }
  if (source.messages === undefined || !source.strictMessages) {
    entries.push(untypedEntry('receive', 'An application message of a type without a schema.'))
  }
  if (source.serverMessages === undefined) {
    entries.push(untypedEntry('send', 'An application message.'))
  }

  const keys = new Set<string>()
  const channelMessages: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}
  const components: Record<string, unknown> = {}
  for (const entry of entries) {
    const key = uniqueKey(keys, `${entry.action === 'receive' ? 'client' : 'server'}.${entry.type === '' ? 'untyped' : entry.type}`)
    components[key] = message(entry)
    channelMessages[key] = { $ref: `#/components/messages/${key}` }
    operations[key] = {
      action: entry.action,
      channel: { $ref: `#/channels/${channel}` },
      messages: [{ $ref: `#/channels/${channel}/messages/${key}` }]
    }
  }
  return {
    asyncapi: '3.0.0',
    info: { ...source.info },
    defaultContentType: 'application/json',
    channels: {
      [channel]: {
        ...addressOf(source.address),
        title: 'Link endpoint',
        description: 'The WebSocket route: a connection links to a user, then exchanges application messages. ' +
          'Every frame is a JSON text frame { type, payload? }; types starting with krmx/ belong to the protocol.',
        messages: channelMessages
      }
    },
    operations,
    components: { messages: components }
  }
}

/**
 * The channel address of a route, its `:name` parameters as AsyncAPI writes them (`{name}`), each described; `:room`
 * names the room a connection belongs to.
 */
function addressOf (path: string): { address: string, parameters?: Record<string, { description: string }> } {
  const names = [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map(([, name]) => name)
  if (names.length === 0) {
    return { address: path }
  }
  const parameters = Object.fromEntries(names.map(name => [name, {
    description: name === 'room'
      ? 'The room the connection belongs to for its whole life: a user space of its own.'
      : 'A parameter of the route.'
  }]))
  return { address: path.replace(/:([A-Za-z0-9_]+)/g, '{$1}'), parameters }
}

/** The AsyncAPI message of `entry`: its payload is the whole frame, `{ type, payload }`. */
function message (entry: Entry): Record<string, unknown> {
  const type = entry.type === ''
    ? { type: 'string', not: { pattern: '^krmx/' } }
    : { type: 'string', const: entry.type }
  const properties: Record<string, unknown> = { type }
  if (entry.payload !== undefined) {
    properties.payload = entry.payload
  }
  return {
    name: entry.type === '' ? 'untyped' : entry.type,
    summary: entry.summary,
    payload: {
      type: 'object',
      properties,
      required: entry.payloadRequired ? ['type', 'payload'] : ['type']
    }
  }
}

/** A component key made of the characters AsyncAPI allows, distinct from every key before it. */
function uniqueKey (keys: Set<string>, wanted: string): string {
  const base = wanted.replaceAll('/', '.').replace(/[^A-Za-z0-9._-]/g, '_')
  let key = base
  for (let n = 2; keys.has(key); n++) {
    key = `${base}-${n}`
  }
  keys.add(key)
  return key
}
