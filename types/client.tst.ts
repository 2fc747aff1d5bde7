import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import { createLinkClient, type LinkClient, type LinkClientSnapshot, type MessageValidator, validateMessages } from '../client.js'
import { linkClient } from '../testing.js'
import WebSocket from 'ws'
import type { LinkMessage, LinkMessageError, LinkServerOptions, LinkUser } from '../index.js'

const options = {
  messages: { 'chat/say': Type.Object({ text: Type.String() }), 'chat/typing': Type.Undefined() },
  serverMessages: { 'chat/said': Type.Object({ from: Type.String(), text: Type.String() }) },
  strictMessages: true
} satisfies LinkServerOptions
const client = createLinkClient<typeof options>('ws://127.0.0.1:3000/link')

test('the options are the server\'s', () => {
  expect(options.strictMessages).type.toBe<true>()
})

test('send takes only the types and payloads of the server\'s messages', () => {
  expect(client.send({ type: 'chat/say', payload: { text: 'hi' } })).type.toBe<boolean>()
  expect(client.send({ type: 'chat/typing' })).type.toBe<boolean>()
  expect(client.send).type.not.toBeCallableWith({ type: 'chat/say', payload: { text: 5 } })
  expect(client.send).type.not.toBeCallableWith({ type: 'chat/shout', payload: { text: 'hi' } })
  expect(client.send).type.not.toBeCallableWith({ type: 'chat/say' })
})

test('message listeners get the payload types of serverMessages', () => {
  client.on('message', message => {
    expect(message).type.toBe<{ type: 'chat/said', payload: { from: string, text: string } }>()
  })
  client.on('join', username => { expect(username).type.toBe<string>() })
  expect(client.on).type.not.toBeCallableWith('nonsense', () => {})
})

test('link resolves with the users; the store is a snapshot and a subscription', async () => {
  expect(await client.link('alice', { auth: async () => 'token' })).type.toBe<LinkUser[]>()
  expect(client.getSnapshot()).type.toBe<LinkClientSnapshot>()
  expect(client.subscribe(() => {})).type.toBe<() => void>()
  expect(createLinkClient('ws://host/link').send({ type: 'anything', payload: { at: 'all' } })).type.toBe<boolean>()
})

test('validateMessages makes a validator of the server\'s schemas; invalid messages reach invalidMessage listeners', () => {
  expect(validateMessages(options.serverMessages)).type.toBe<MessageValidator>()
  expect(validateMessages).type.not.toBeCallableWith({ 'chat/said': 'not a schema' })
  client.on('invalidMessage', (message, errors) => {
    expect(message).type.toBe<LinkMessage>()
    expect(errors).type.toBe<readonly LinkMessageError[]>()
  })
})

test('a list of URLs; the lost event counts messages; the test kit links the same client, typed', async () => {
  const listed = createLinkClient<typeof options>(['ws://a/link', 'ws://b/link'], { heartbeatMilliseconds: false })
  listed.on('lost', count => { expect(count).type.toBe<number>() })
  expect(createLinkClient).type.not.toBeCallableWith(['ws://a/link'], { heartbeatMilliseconds: 'often' })
  const app = Fastify()
  const kit = await linkClient<typeof options>(app, 'alice', { path: '/link', auth: 'token', client: { reconnect: false } })
  expect(kit).type.toBe<LinkClient<typeof options>>()
  expect(kit.send).type.not.toBeCallableWith({ type: 'chat/shout' })
  expect(linkClient).type.not.toBeCallableWith(app, 'alice', { client: { WebSocket: undefined, nonsense: 1 } })
})

test('the WebSocket of ws fits as it is, and so does a browser-like one; something else does not', () => {
  expect(createLinkClient('ws://a/link', { WebSocket })).type.toBe<LinkClient>()
  expect(createLinkClient).type.not.toBeCallableWith('ws://a/link', { WebSocket: class { constructor (readonly url: string) {} } })
})

test('handle takes the types of serverMessages and hands their payloads; any type without them', () => {
  client.handle('chat/said', (payload, message) => {
    expect(payload).type.toBe<{ from: string, text: string }>()
    expect(message).type.toBe<{ type: 'chat/said', payload: { from: string, text: string } }>()
  })
  expect(client.handle).type.not.toBeCallableWith('chat/shout', () => {})
  createLinkClient('ws://a/link').handle('anything', (payload, message) => {
    expect(payload).type.toBe<unknown>()
    expect(message).type.toBe<LinkMessage>()
  })
})
