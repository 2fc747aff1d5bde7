import { Parser } from '@asyncapi/parser'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import t from 'tap'
import fastifyLinkServer, { type AsyncApiDocument, type LinkServer } from '../../index.js'
import { build } from '../helpers/app.js'

const messages = {
  'chat/say': Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
  'chat/typing': Type.Undefined(),
  'game/state': Type.Unknown()
}
const serverMessages = {
  'chat/said': Type.Object({ from: Type.String(), text: Type.String() })
}

const protocolMessages = [
  ['receive', 'krmx/link'], ['receive', 'krmx/unlink'], ['receive', 'krmx/leave'], ['receive', 'krmx/ping'],
  ['send', 'krmx/accepted'], ['send', 'krmx/pong'], ['send', 'krmx/rejected'], ['send', 'krmx/joined'],
  ['send', 'krmx/linked'], ['send', 'krmx/unlinked'], ['send', 'krmx/left']
]

/** Parses `document` with the AsyncAPI parser; returns its diagnostics and, per operation, the action and message name. */
async function parse (document: AsyncApiDocument) {
  const { document: parsed, diagnostics } = await new Parser().parse(document as never)
  return {
    diagnostics: diagnostics.map(({ code, severity }) => ({ code, severity })),
    operations: parsed?.operations().all().map(operation => [operation.action(), operation.messages().all()[0].name()])
  }
}

/** The only diagnostic of a valid 3.0.0 document: a hint that 3.1.0 exists. */
const latestVersionHint = [{ code: 'asyncapi-latest-version', severity: 2 }]

t.test('the document is valid AsyncAPI 3.0 and lists the protocol frames and every registered type', async t => {
  const app = await build(t, { path: '/link', messages, serverMessages, asyncapi: { info: { title: 'Chat', version: '1.0.0' } } })
  const document = app.linkServer.asyncapi()
  t.strictSame(await parse(document), {
    diagnostics: latestVersionHint,
    operations: [
      ...protocolMessages,
      ['receive', 'chat/say'], ['receive', 'chat/typing'], ['receive', 'game/state'], ['send', 'chat/said'], ['receive', 'untyped']
    ]
  })
  t.strictSame([document.asyncapi, document.info, document.defaultContentType], ['3.0.0', { title: 'Chat', version: '1.0.0' }, 'application/json'])
  const channel = document.channels.link as { address: string, messages: Record<string, unknown> }
  t.equal(channel.address, '/link')
  t.strictSame(channel.messages['client.chat.say'], { $ref: '#/components/messages/client.chat.say' })
  t.strictSame(document.operations['client.chat.say'], {
    action: 'receive', channel: { $ref: '#/channels/link' }, messages: [{ $ref: '#/channels/link/messages/client.chat.say' }]
  })
  const components = document.components.messages as Record<string, unknown>
  t.strictSame(components['client.chat.say'], {
    name: 'chat/say',
    summary: 'Application message chat/say.',
    payload: {
      type: 'object',
      properties: {
        type: { type: 'string', const: 'chat/say' },
        payload: { type: 'object', properties: { text: { type: 'string', minLength: 1, maxLength: 500 } }, required: ['text'] }
      },
      required: ['type', 'payload']
    }
  })
  t.strictSame(components['client.chat.typing'], {
    name: 'chat/typing',
    summary: 'Application message chat/typing.',
    payload: { type: 'object', properties: { type: { type: 'string', const: 'chat/typing' } }, required: ['type'] }
  }, 'a type without a payload has no payload property')
  t.strictSame(components['client.game.state'], {
    name: 'game/state',
    summary: 'Application message game/state.',
    payload: { type: 'object', properties: { type: { type: 'string', const: 'game/state' }, payload: {} }, required: ['type'] }
  }, 'a payload the schema allows to be absent is not required')
  t.strictSame(components['client.untyped'], {
    name: 'untyped',
    summary: 'An application message of a type without a schema.',
    payload: { type: 'object', properties: { type: { type: 'string', not: { pattern: '^krmx/' } }, payload: {} }, required: ['type'] }
  })
  t.strictSame(components['client.krmx.link'], {
    name: 'krmx/link',
    summary: 'Link this connection to a user.',
    payload: {
      type: 'object',
      properties: {
        type: { type: 'string', const: 'krmx/link' },
        payload: {
          type: 'object',
          properties: {
            username: { type: 'string' },
            version: { type: 'string' },
            auth: { type: 'string' },
            session: { type: 'object', properties: { user: { type: 'integer', minimum: 0 }, last: { type: 'integer', minimum: 0 } } }
          },
          required: ['username', 'version']
        }
      },
      required: ['type', 'payload']
    }
  })
  t.strictSame(components['server.krmx.accepted'], {
    name: 'krmx/accepted',
    summary: 'The link request of this connection was accepted.',
    payload: {
      type: 'object',
      properties: {
        type: { type: 'string', const: 'krmx/accepted' },
        payload: {
          type: 'object',
          properties: {
            session: { type: 'object', properties: { user: { type: 'integer', minimum: 0 }, last: { type: 'integer', minimum: 0 } }, required: ['user'] }
          }
        }
      },
      required: ['type']
    }
  })
})

t.test('without schemas both directions are untyped; with strictMessages no untyped message is received', async t => {
  const untyped = await build(t)
  t.strictSame(await parse(untyped.linkServer.asyncapi()), {
    diagnostics: latestVersionHint,
    operations: [...protocolMessages, ['receive', 'untyped'], ['send', 'untyped']]
  })
  t.strictSame(untyped.linkServer.asyncapi().info, { title: 'fastify-link-server', version: '0.0.0' })
  const strict = await build(t, { messages: { 'chat/say': messages['chat/say'] }, strictMessages: true })
  t.strictSame(await parse(strict.linkServer.asyncapi()), {
    diagnostics: latestVersionHint,
    operations: [...protocolMessages, ['receive', 'chat/say'], ['send', 'untyped']]
  })
})

t.test('types that map to the same key get distinct keys; a client and a server type may share a name', async t => {
  const app = await build(t, {
    messages: { 'chat/say': Type.String(), 'chat.say': Type.String(), 'chat say': Type.String() },
    serverMessages: { 'chat/say': Type.String() },
    strictMessages: true
  })
  const document = app.linkServer.asyncapi()
  t.strictSame(Object.keys(document.operations).slice(protocolMessages.length), [
    'client.chat.say', 'client.chat.say-2', 'client.chat_say', 'server.chat.say'
  ])
  t.strictSame(await parse(document), {
    diagnostics: latestVersionHint,
    operations: [...protocolMessages, ['receive', 'chat/say'], ['receive', 'chat.say'], ['receive', 'chat say'], ['send', 'chat/say']]
  })
})

t.test('asyncapi() returns a new copy each time', async t => {
  const app = await build(t, { messages })
  const first = app.linkServer.asyncapi()
  first.info.title = 'changed'
  t.equal(app.linkServer.asyncapi().info.title, 'fastify-link-server')
  t.not(app.linkServer.asyncapi(), app.linkServer.asyncapi())
})

t.test('the asyncapi path option serves the document as JSON, under the prefix like the WebSocket route', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  let linkServer: LinkServer | undefined
  await app.register(async scoped => {
    await scoped.register(fastifyLinkServer, {
      path: '/link',
      messages,
      asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '2.0.0', description: 'The chat endpoint' } }
    })
    linkServer = scoped.linkServer
  }, { prefix: '/api' })
  await app.ready()
  const response = await app.inject('/api/asyncapi.json')
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  const served = response.json() as AsyncApiDocument
  t.strictSame(served, linkServer?.asyncapi())
  t.strictSame(served.info, { title: 'Chat', version: '2.0.0', description: 'The chat endpoint' })
  t.equal((served.channels.link as { address: string }).address, '/api/link')
  t.equal((await app.inject('/asyncapi.json')).statusCode, 404, 'no route without the option or outside the prefix')
})

t.test('the channel address of the root path under a prefix is the prefix', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  let linkServer: LinkServer | undefined
  await app.register(async scoped => {
    await scoped.register(fastifyLinkServer, { pingIntervalMilliseconds: 0 })
    linkServer = scoped.linkServer
  }, { prefix: '/live' })
  await app.ready()
  t.equal((linkServer?.asyncapi().channels.link as { address: string }).address, '/live')
})

t.test('with rooms on, the channel address has the room as a parameter, as AsyncAPI writes it', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  let linkServer: LinkServer | undefined
  await app.register(async scoped => {
    await scoped.register(fastifyLinkServer, { path: '/tables/:room', pingIntervalMilliseconds: 0 })
    linkServer = scoped.linkServer
  }, { prefix: '/games/:game' })
  await app.ready()
  const document = linkServer?.asyncapi() as AsyncApiDocument
  t.strictSame((await parse(document)).diagnostics, latestVersionHint, 'a valid document')
  const { address, parameters } = document.channels.link as { address: string, parameters: unknown }
  t.strictSame({ address, parameters }, {
    address: '/games/{game}/tables/{room}',
    parameters: {
      game: { description: 'A parameter of the route.' },
      room: { description: 'The room the connection belongs to for its whole life: a user space of its own.' }
    }
  })
})
