import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import fastifyLinkServer from '../../index.js'
import { Client, type Received, urlOf } from '../helpers/clients.js'
import { version } from '../helpers/frames.js'

// Property-based fuzzing: every run builds a server on a real loopback port, links a well-behaved
// `watcher`, throws a few hundred generated frames at three other connections, then checks the
// invariants. FUZZ_RUNS=5000 npx tap --timeout 0 --disable-coverage test/robustness/fuzz.test.ts runs it longer.
const runs = Number(process.env.FUZZ_RUNS ?? 250)
const maxPayload = 8 * 1024
const usernames = ['u1', 'u2', 'u3', 'watcher', '__proto__', 'constructor', 'toString']
const protocolTypes = ['krmx/link', 'krmx/unlink', 'krmx/leave', 'krmx/accepted', 'krmx/rejected', 'krmx/joined', 'krmx/linked', 'krmx/unlinked', 'krmx/left']

/** One frame as it goes on the wire: text (possibly invalid UTF-8) or binary. */
interface WireFrame { data: string | Uint8Array, binary: boolean }

const text = (data: string): WireFrame => ({ data, binary: false })
const json = (value: unknown): WireFrame => text(JSON.stringify(value))

const validFrame = fc.oneof(
  fc.constantFrom(...usernames).map(username => json({ type: 'krmx/link', payload: { username, version } })),
  fc.constant(json({ type: 'krmx/unlink' })),
  fc.constant(json({ type: 'krmx/leave' })),
  fc.string({ maxLength: 40 }).map(say => json({ type: 'chat/say', payload: { text: say } })),
  fc.constant(json({ type: 'chat/typing' })),
  fc.jsonValue().map(payload => json({ type: 'app/any', payload }))
)

const frame: fc.Arbitrary<WireFrame> = fc.oneof(
  { weight: 4, arbitrary: validFrame },
  // random bytes, as a binary frame and as a text frame that is usually invalid UTF-8
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map(data => ({ data, binary: true })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map(data => ({ data, binary: false })) },
  // almost-valid JSON: a valid frame cut short or with one character changed
  {
    weight: 2,
    arbitrary: fc.tuple(validFrame, fc.nat(), fc.string({ minLength: 1, maxLength: 1 })).map(([valid, at, character]) => {
      const source = valid.data as string
      const index = at % source.length
      return text(at % 2 === 0 ? source.slice(0, index) : source.slice(0, index) + character + source.slice(index + 1))
    })
  },
  { weight: 1, arbitrary: fc.json().map(text) },
  // deep nesting, in arrays and in payloads
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 4000 }).map(depth => text('['.repeat(depth) + ']'.repeat(depth))) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 3000 }).map(depth => text(`{"type":"app/deep","payload":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`))
  },
  // long strings up to the payload limit, and a little beyond it
  {
    weight: 1,
    arbitrary: fc.integer({ min: maxPayload - 200, max: maxPayload + 64 }).map(size => {
      const prefix = '{"type":"chat/say","payload":{"text":"'
      return text(prefix + 'x'.repeat(Math.max(0, size - prefix.length - 3)) + '"}}')
    })
  },
  // wrong types in every field of every protocol frame
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...protocolTypes), fc.anything()).map(([type, payload]) => json({ type, payload }))
  },
  {
    weight: 2,
    arbitrary: fc.record({ username: fc.anything(), version: fc.anything(), auth: fc.anything() }, { requiredKeys: [] })
      .map(payload => json({ type: 'krmx/link', payload }))
  },
  { weight: 1, arbitrary: fc.anything().map(type => json({ type, payload: 1 })) },
  // prototype pollution attempts
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"type":"krmx/link","payload":{"__proto__":{"polluted":true},"username":"u1","version":"0.6.0"}}',
      '{"type":"chat/say","payload":{"__proto__":{"text":"from the prototype"}}}',
      '{"type":"app/any","payload":{"constructor":{"prototype":{"polluted":true}}}}',
      '{"__proto__":{"type":"krmx/leave"}}',
      '{"type":"__proto__","payload":{"__proto__":{"polluted":true}}}',
      '{"type":"constructor","payload":{"prototype":{"polluted":true}}}'
    ).map(text)
  },
  // reserved types the protocol does not know
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map(suffix => json({ type: `krmx/${suffix}`, payload: suffix })) }
)

type Command =
  | { kind: 'frame', client: number, frame: WireFrame }
  | { kind: 'reconnect', client: number }
  | { kind: 'broadcast' }
  | { kind: 'send' }

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 40, arbitrary: fc.record({ kind: fc.constant('frame' as const), client: fc.integer({ min: 0, max: 2 }), frame }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reconnect' as const), client: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'broadcast' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'send' as const }) }
)

const config = fc.record({ invalidMessage: fc.constantFrom('drop' as const, 'unlink' as const), strictMessages: fc.boolean() })

/** The probes each fuzzed connection received: `send(user, probe)` must reach exactly the connection linked to `user`. */
const probesOf = new WeakMap<WebSocket, string[]>()

async function connectTo (app: FastifyInstance): Promise<WebSocket> {
  const ws = new WebSocket(urlOf(app))
  ws.on('error', () => {}) // a connection the server closes for a protocol error may report it
  const probes: string[] = []
  probesOf.set(ws, probes)
  ws.on('message', data => {
    const frame = JSON.parse(data.toString()) as Received
    if (frame.type === 'probe') {
      probes.push(frame.payload as string)
    }
  })
  await once(ws, 'open')
  return ws
}

/** Waits until the server has handled everything `ws` sent, or until it is closed. */
async function settle (ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.OPEN) {
    const answered = once(ws, 'pong')
    ws.ping()
    await Promise.race([answered, once(ws, 'close')])
  } else if (ws.readyState !== WebSocket.CLOSED) {
    await once(ws, 'close')
  }
}

/** The user list the watcher was told about, replayed from its frames. */
function replay (received: Received[]): Array<{ username: string, isLinked: boolean }> {
  const users: Array<{ username: string, isLinked: boolean }> = []
  for (const { type, payload } of received) {
    const username = (payload as { username?: string } | undefined)?.username
    const user = users.find(candidate => candidate.username === username)
    switch (type) {
      case 'krmx/joined': users.push({ username: username as string, isLinked: false }); break
      case 'krmx/linked': (user as { isLinked: boolean }).isLinked = true; break
      case 'krmx/unlinked': (user as { isLinked: boolean }).isLinked = false; break
      case 'krmx/left': users.splice(users.indexOf(user as never), 1); break
    }
  }
  return users
}

/** Runs `commands` against a fresh server and checks the invariants; throws on the first one broken. */
async function check (options: { invalidMessage: 'drop' | 'unlink', strictMessages: boolean }, commands: Command[]): Promise<number> {
  const app = Fastify()
  await app.register(fastifyLinkServer, {
    pingIntervalMilliseconds: 0,
    linkTimeoutMilliseconds: 0,
    maxPayload,
    messages: { 'chat/say': Type.Object({ text: Type.String() }), 'chat/typing': Type.Undefined() },
    ...options
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const clients: WebSocket[] = []
  let framesSent = 0
  try {
    const watcher = new Client(await connectTo(app))
    const linked = await watcher.linked('watcher', 3)
    clients.push(watcher.ws, await connectTo(app), await connectTo(app), await connectTo(app))
    let sequence = 0
    for (const step of commands) {
      if (step.kind === 'broadcast') {
        app.linkServer.broadcast({ type: 'tick', payload: sequence++ })
      } else if (step.kind === 'send') {
        app.linkServer.send('watcher', { type: 'direct', payload: sequence++ })
      } else if (step.kind === 'reconnect' || clients[step.client + 1].readyState !== WebSocket.OPEN) {
        clients[step.client + 1].terminate()
        clients[step.client + 1] = await connectTo(app)
      }
      if (step.kind === 'frame') {
        clients[step.client + 1].send(step.frame.data, { binary: step.frame.binary })
        framesSent++
      }
    }
    // Everything sent has been handled, the link decisions made in later microtasks included.
    await Promise.all(clients.map(settle))
    await new Promise(resolve => setImmediate(resolve))
    await Promise.all(clients.map(settle))
    const stillOpen = clients.filter(ws => ws.readyState === WebSocket.OPEN).length
    while (app.linkServer.getStats().connections !== stillOpen) {
      await new Promise(resolve => setImmediate(resolve))
    }

    // The invariants, seen from outside: every linked user has exactly one open connection, which a
    // message sent to the user reaches, and no other connection is linked.
    const users = app.linkServer.getUsers()
    const linkedUsers = users.filter(user => user.isLinked).map(user => user.username)
    assert.equal(app.linkServer.getStats().linkedUsers, linkedUsers.length, 'every linked user has one connection here, and no other connection is linked')
    for (const username of linkedUsers) {
      if (username !== 'watcher') {
        app.linkServer.send(username, { type: 'probe', payload: username })
      }
    }
    await Promise.all(clients.map(settle))
    const probed = clients.slice(1).flatMap(ws => probesOf.get(ws) as string[])
    assert.deepEqual(probed.sort(), linkedUsers.filter(username => username !== 'watcher').sort(), 'a message to each linked user reaches exactly one connection')
    for (const ws of clients) {
      (probesOf.get(ws) as string[]).length = 0
    }
    const received = [...linked, ...watcher.unread()]
    assert.deepEqual(Object.keys(Object.prototype), [])
    assert.equal(({} as Record<string, unknown>).polluted, undefined)
    assert.deepEqual(users.find(user => user.username === 'watcher'), { username: 'watcher', isLinked: true })
    assert.deepEqual(replay(received), users, 'the watcher was told exactly who is there')
    const applicationFrames = received.filter(({ type }) => !(type as string).startsWith('krmx/'))
    assert.deepEqual(applicationFrames.map(({ payload }) => payload), Array.from({ length: sequence }, (_, index) => index),
      'the watcher received every frame addressed to it, in order')
  } finally {
    for (const ws of clients) {
      ws.terminate()
    }
    await app.close()
  }
  return framesSent
}

t.test(`${runs} runs of generated frames at unlinked and linked connections keep every invariant`, async t => {
  let framesSent = 0
  await fc.assert(fc.asyncProperty(config, fc.array(command, { minLength: 230, maxLength: 260 }), async (options, commands) => {
    framesSent += await check(options, commands)
  }), { numRuns: runs })
  t.ok(framesSent >= Math.min(50_000, runs * 200), `${framesSent} generated frames were sent`)
})
