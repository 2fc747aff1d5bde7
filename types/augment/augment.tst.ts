import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyLinkServer, { type LinkServer } from '../../index.js'

const messages = {
  'chat/say': Type.Object({ text: Type.String() })
}
const serverMessages = {
  'chat/said': Type.Object({ from: Type.String(), text: Type.String() })
}

declare module '../../index.js' {
  interface LinkServerSchemas {
    messages: typeof messages
    serverMessages: typeof serverMessages
    strictMessages: true
    userData: { role: 'admin' | 'player' }
  }
}

const app = Fastify()

test('augmenting LinkServerSchemas types fastify.linkServer everywhere, without casts', () => {
  expect(app.register).type.toBeCallableWith(fastifyLinkServer, { messages, serverMessages, strictMessages: true })
  expect(app.linkServer).type.toBe<LinkServer>()
  app.linkServer.on('message', (_username, message) => {
    expect(message).type.toBe<{ type: 'chat/say', payload: { text: string } }>()
  })
  app.linkServer.handle('chat/say', (_username, payload) => {
    expect(payload).type.toBe<{ text: string }>()
  })
  expect(app.linkServer.handle).type.not.toBeCallableWith('chat/shout', () => {})
  expect(app.linkServer.send).type.toBeCallableWith('alice', { type: 'chat/said', payload: { from: 'bob', text: 'hi' } })
  expect(app.linkServer.send).type.not.toBeCallableWith('alice', { type: 'chat/said', payload: { text: 'hi' } })
  expect(app.linkServer.broadcast).type.not.toBeCallableWith({ type: 'chat/say', payload: { text: 'hi' } })
})

test('userData in LinkServerSchemas types attach, what authenticate resolves to, getUser().data and the link event', () => {
  app.linkServer.on('authenticate', (_username, _info, _reject, markAsync, attach) => {
    expect(attach).type.toBeCallableWith({ role: 'admin' })
    expect(attach).type.not.toBeCallableWith({ role: 'root' })
    expect(markAsync).type.toBeCallableWith(async () => ({ role: 'player' as const }))
  })
  expect(app.linkServer.on).type.not.toBeCallableWith('authenticate', async () => ({ role: 'root' }))
  app.linkServer.on('link', (_username, { data, replay }) => {
    expect(data).type.toBe<{ role: 'admin' | 'player' } | undefined>()
    expect(replay).type.toBe<{ replayed: number, lost: number } | undefined>()
  })
  expect(app.linkServer.getUser('alice')?.data).type.toBe<{ role: 'admin' | 'player' } | undefined>()
})
