import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyLinkServer, {
  type AsyncApiDocument,
  type IncomingMessage,
  type LinkMessage,
  type LinkMessageError,
  type LinkServer,
  type LinkServerOptions,
  type LinkServerStats,
  type LinkUser,
  type OutgoingMessage,
  type RoomHandle,
  roomRegex
} from '../index.js'

const messages = {
  'chat/say': Type.Object({ text: Type.String() }),
  'chat/typing': Type.Undefined(),
  'game/move': Type.Object({ x: Type.Integer(), y: Type.Integer() })
}
const serverMessages = {
  'chat/said': Type.Object({ from: Type.String(), text: Type.String() }),
  'chat/cleared': Type.Undefined()
}
const options = { messages, serverMessages, strictMessages: true } satisfies LinkServerOptions

type Said = { type: 'chat/say', payload: { text: string } }
type Typing = { type: 'chat/typing', payload?: undefined }
type Move = { type: 'game/move', payload: { x: number, y: number } }

const app = Fastify()
const linkServer = app.linkServer.typed<typeof options>()

test('the message options take TypeBox schemas, the invalidMessage mode and the AsyncAPI route', () => {
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, options)
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, {
    messages,
    invalidMessage: 'unlink',
    asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '1.0.0', description: 'A chat' } }
  })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { messages: { 'chat/say': { type: 'object' } } })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { invalidMessage: 'close' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { strictMessages: 'yes' })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { asyncapi: { path: 5 } })
})

test('typed() gives the same link server, typed by the options', () => {
  expect(linkServer).type.toBe<LinkServer<typeof options>>()
  expect(options.strictMessages).type.toBe<true>()
})

test('the message listener receives a discriminated union of the registered types', () => {
  linkServer.on('message', (username, message) => {
    expect(username).type.toBe<string>()
    expect(message).type.toBe<Said | Typing | Move>()
    if (message.type === 'game/move') {
      expect(message.payload).type.toBe<{ x: number, y: number }>()
    }
    if (message.type === 'chat/say') {
      expect(message.payload.text).type.toBe<string>()
    }
  })
  expect(linkServer.on).type.not.toBeCallableWith('message', (_username: string, message: { type: 'chat/say', payload: number }) => message)
})

test('without strictMessages untyped messages are part of the union', () => {
  expect<IncomingMessage<{ messages: typeof messages }>>().type.toBe<Said | Typing | Move | LinkMessage>()
  expect<IncomingMessage<{ messages: typeof messages, strictMessages: false }>>().type.toBe<Said | Typing | Move | LinkMessage>()
  expect<IncomingMessage<object>>().type.toBe<LinkMessage>()
})

test('handle is typed by the schema of its type, and refuses unregistered types under strictMessages', () => {
  linkServer.handle('chat/say', (username, payload) => {
    expect(username).type.toBe<string>()
    expect(payload).type.toBe<{ text: string }>()
  })
  linkServer.handle('chat/typing', (_username, payload) => {
    expect(payload).type.toBe<undefined>()
  })
  expect(linkServer.handle('game/move', () => {})).type.toBe<LinkServer<typeof options>>()
  expect(linkServer.handle).type.not.toBeCallableWith('chat/shout', () => {})
  expect(linkServer.handle).type.not.toBeCallableWith('chat/say', (_username: string, payload: { text: number }) => payload)
  const loose = app.linkServer.typed<{ messages: typeof messages }>()
  loose.handle('other/type', (_username, payload) => {
    expect(payload).type.toBe<unknown>()
  })
  loose.handle('game/move', (_username, payload) => {
    expect(payload).type.toBe<{ x: number, y: number }>()
  })
})

test('send and broadcast accept only the registered server messages with their payloads', () => {
  expect(linkServer.send).type.toBeCallableWith('alice', { type: 'chat/said', payload: { from: 'bob', text: 'hi' } })
  expect(linkServer.broadcast).type.toBeCallableWith({ type: 'chat/cleared' })
  expect(linkServer.broadcast).type.toBeCallableWith({ type: 'chat/cleared' }, 'alice')
  expect(linkServer.send).type.not.toBeCallableWith('alice', { type: 'chat/shout', payload: { from: 'bob', text: 'hi' } })
  expect(linkServer.send).type.not.toBeCallableWith('alice', { type: 'chat/said', payload: { from: 'bob', text: 5 } })
  expect(linkServer.broadcast).type.not.toBeCallableWith({ type: 'chat/said' })
  expect(linkServer.broadcast).type.not.toBeCallableWith({ type: 'chat/say', payload: { text: 'a client type' } })
  expect<OutgoingMessage<{ messages: typeof messages }>>().type.toBe<LinkMessage>()
})

test('invalidMessage, getStats and asyncapi', () => {
  linkServer.on('invalidMessage', (username, message, errors) => {
    expect(username).type.toBe<string>()
    expect(message).type.toBe<LinkMessage>()
    expect(errors).type.toBe<LinkMessageError[]>()
  })
  expect(app.linkServer.getStats()).type.toBe<LinkServerStats>()
  expect(app.linkServer.asyncapi()).type.toBe<AsyncApiDocument>()
  expect(app.linkServer.asyncapi().asyncapi).type.toBe<'3.0.0'>()
})

test('rooms: room(name) is the user API of one room, typed by the schemas; every event and handler gets the room last', async () => {
  const table = linkServer.room('42')
  expect(table).type.toBe<RoomHandle<typeof options>>()
  expect(table.name).type.toBe<string>()
  expect(table.send).type.toBeCallableWith('alice', { type: 'chat/said', payload: { from: 'bob', text: 'hi' } })
  expect(table.broadcast).type.toBeCallableWith({ type: 'chat/cleared' }, 'alice')
  expect(table.broadcast).type.not.toBeCallableWith({ type: 'chat/shout' })
  expect(table.join('alice')).type.toBe<Promise<void>>()
  expect(table.getUsers()).type.toBe<LinkUser[]>()
  expect(table.isLinked('alice')).type.toBe<boolean>()
  expect(await linkServer.getRooms()).type.toBe<string[]>()
  linkServer.handle('chat/say', (_username, payload, room) => {
    expect(payload).type.toBe<{ text: string }>()
    expect(room).type.toBe<RoomHandle<typeof options>>()
    room.broadcast({ type: 'chat/said', payload: { from: 'x', text: payload.text } })
  })
  linkServer.on('join', (_username, room) => { expect(room).type.toBe<RoomHandle<typeof options>>() })
  linkServer.on('link', (_username, _info, room) => { expect(room.name).type.toBe<string>() })
  linkServer.on('message', (_username, message, room) => {
    expect(message).type.toBe<Said | Typing | Move>()
    expect(room).type.toBe<RoomHandle<typeof options>>()
  })
  linkServer.on('invalidMessage', (_username, _message, _errors, room) => { expect(room.name).type.toBe<string>() })
  linkServer.on('roomStart', (room) => { expect(room).type.toBe<RoomHandle<typeof options>>() })
  linkServer.on('roomEnd', (room) => { expect(room.name).type.toBe<string>() })
  linkServer.on('authenticate', (_username, info) => { expect(info.room).type.toBe<RoomHandle>() })
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { path: '/tables/:room', maxRooms: 100, acceptNewRooms: false, isValidRoom: (room: string) => room.length < 9 })
  expect(app.register).type.not.toBeCallableWith(fastifyLinkServer, { maxRooms: '100' })
  expect(roomRegex).type.toBe<RegExp>()
})
