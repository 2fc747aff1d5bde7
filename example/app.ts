import { randomUUID } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyLinkServer, { type LinkServerOptions } from '../index.js'

/** The chat's messages, both ways, as TypeBox schemas: every payload is checked, and typed in TypeScript. */
export const chatOptions = {
  path: '/link/:room', // a chat per channel, each a room: ws://host/link/general
  messages: {
    'chat/say': Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
    'chat/typing': Type.Undefined(),
    'chat/ping': Type.Object({ sent: Type.Number() })
  },
  serverMessages: {
    // Every line has an id, unique across instances: a stock Krmx client's replay is at-least-once.
    'chat/said': Type.Object({ id: Type.String(), from: Type.String(), text: Type.String() }),
    'chat/typing': Type.Object({ from: Type.String() }),
    'chat/pong': Type.Object({ sent: Type.Number() }),
    'chat/history': Type.Object({ lines: Type.Array(Type.Object({ id: Type.String(), from: Type.String(), text: Type.String() })) })
  },
  strictMessages: true,
  // Sessions: a user who drops comes back within a minute as the same user, and gets what it missed; past
  // 50 missed lines the replay is incomplete and the whole history is sent instead (see the link listener).
  reconnectWindowMilliseconds: 60_000,
  replay: { maxMessages: 50 },
  linkConflict: 'takeover',
  asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '1.0.0' } }
} satisfies LinkServerOptions

/** How many chat lines the server keeps, to resend them to a user whose replay was incomplete. */
const historyLength = 100

/**
 * A chat of channels: `chat/say` is broadcast to the channel as `chat/said`, `chat/typing` to the others there, and
 * `chat/ping` answered with `chat/pong` to the sender alone. Every event and refused message is logged; the
 * channels are listed at /channels, the AsyncAPI document at /asyncapi.json. With `redis` (a redis:// URL), the
 * instance is a node of a cluster: every instance on that Redis shares the channels.
 */
export async function buildExample (options: FastifyServerOptions = { logger: true }, redis?: string): Promise<FastifyInstance> {
  const app = Fastify(options)
  await app.register(fastifyLinkServer, redis === undefined ? chatOptions : { ...chatOptions, cluster: { redis } })
  const linkServer = app.linkServer.typed<typeof chatOptions>()

  linkServer.on('authenticate', (username, info, reject) => {
    if (username.toLowerCase() === 'admin') {
      reject('admin is reserved')
    }
    app.log.info({ username, channel: info.room.name, isNewUser: info.isNewUser, ip: info.request.ip }, 'authenticating')
  })
  for (const event of ['join', 'link', 'unlink', 'leave'] as const) {
    linkServer.on(event, (username: string) => app.log.info({ username }, event))
  }
  linkServer.on('invalidMessage', (username, message, errors) => app.log.info({ username, message, errors }, 'refused'))

  const histories = new Map<string, Array<{ id: string, from: string, text: string }>>()
  const instance = randomUUID()
  let lines = 0
  linkServer.on('link', (username, { replay }, channel) => {
    if (replay !== undefined && replay.lost > 0) { // the replay was incomplete
      channel.send(username, { type: 'chat/history', payload: { lines: histories.get(channel.name) ?? [] } })
    }
  })
  linkServer.on('roomEnd', channel => histories.delete(channel.name))
  linkServer.handle('chat/say', (from, { text }, channel) => {
    const line = { id: `${instance}:${++lines}`, from, text }
    const history = histories.get(channel.name) ?? []
    histories.set(channel.name, [...history.slice(1 - historyLength), line])
    channel.broadcast({ type: 'chat/said', payload: line })
  })
  linkServer.handle('chat/typing', (from, _payload, channel) => {
    channel.broadcast({ type: 'chat/typing', payload: { from } }, from)
  })
  linkServer.handle('chat/ping', (from, { sent }, channel) => {
    channel.send(from, { type: 'chat/pong', payload: { sent } })
  })
  app.get('/channels', async () => ({ channels: await linkServer.getRooms() }))
  return app
}
