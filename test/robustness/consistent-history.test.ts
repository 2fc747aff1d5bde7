import { once } from 'node:events'
import { createClient } from '@krmx/client'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import fastifyLinkServer, { type LinkUser } from '../../index.js'
import { urlOf } from '../helpers/clients.js'
import { eventually } from '../helpers/waits.js'

// Listeners that call the API at every event must never cut into a change: every connection sees a
// consistent history (nothing about a user before its krmx/joined, no duplicates, krmx/linked before
// krmx/unlinked), the events come in an order that could have happened, and the stock Krmx client,
// which throws on a history it cannot follow, agrees with the server at the end of every step.
// HISTORY_RUNS=2000 npx tap --timeout 0 --disable-coverage test/robustness/consistent-history.test.ts runs it longer.
const runs = Number(process.env.HISTORY_RUNS ?? 150)
const clientCount = 3
const names = ['ann', 'ben', 'cat', 'dan']
const bots = ['bot1', 'bot2', 'bot3']
/** Reactions a run may make in all, so that listeners reacting to their own changes come to an end. */
const reactionBudget = 25

/** What a socket of the stock client received, and what its handlers threw (the client gives them no try). */
interface Wire { frames: Array<{ type: string, payload?: { username: string } }>, sent: string[], thrown: unknown[] }
const wires = new WeakMap<object, Wire>()

/** The `WebSocket` the stock Krmx client finds: ws, recording every frame and catching what the client's handler throws. */
class RecordingWebSocket extends WebSocket {
  constructor (url: string) {
    super(url)
    const wire: Wire = { frames: [], sent: [], thrown: [] }
    wires.set(this, wire)
    this.on('message', data => { wire.frames.push(JSON.parse(data.toString()) as Wire['frames'][number]) })
    const accessor = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage') as PropertyDescriptor
    Object.defineProperty(this, 'onmessage', {
      get: () => accessor.get?.call(this),
      set: (handler: (event: WebSocket.MessageEvent) => void) => {
        accessor.set?.call(this, (event: WebSocket.MessageEvent) => {
          try {
            handler(event)
          } catch (error) {
            wire.thrown.push(error)
          }
        })
      }
    })
  }

  override send (data: string): void {
    wires.get(this)?.sent.push(data)
    super.send(data)
  }
}
const globals = globalThis as unknown as { WebSocket?: unknown }
const previousWebSocket = globals.WebSocket
globals.WebSocket = RecordingWebSocket
t.teardown(() => { globals.WebSocket = previousWebSocket })

type KrmxClient = ReturnType<typeof createClient>
const socketOf = (client: KrmxClient): RecordingWebSocket | undefined => (client as unknown as { socket?: RecordingWebSocket }).socket

const reactions = ['none', 'joinBot', 'kickSelf', 'unlinkSelf', 'kickOther', 'unlinkOther', 'sendSelf', 'broadcast'] as const
type Reaction = typeof reactions[number]
const reaction = fc.constantFrom(...reactions)
const reactionsArbitrary = fc.record({ join: reaction, link: reaction, unlink: reaction, leave: reaction })

type Command =
  | { kind: 'link', client: number, name: string }
  | { kind: 'unlink' | 'leave' | 'send' | 'reconnect', client: number }
  | { kind: 'join', name: string }
  | { kind: 'kick' | 'serverUnlink', name: string }
const clientIndex = fc.integer({ min: 0, max: clientCount - 1 })
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('link' as const), client: clientIndex, name: fc.constantFrom(...names) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('unlink' as const, 'leave' as const, 'send' as const, 'reconnect' as const), client: clientIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('join' as const), name: fc.constantFrom(...bots, ...names) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('kick' as const, 'serverUnlink' as const), name: fc.constantFrom(...bots, ...names) }) }
)

/** Replays what one connection received against the protocol's rules; returns the first rule broken, if any. */
function checkHistory (wire: Wire): { violation: string | undefined, linkedAs: string | undefined, users: LinkUser[] } {
  const requested = wire.sent.flatMap(data => {
    const frame = JSON.parse(data) as { type: string, payload?: { username: string } }
    return frame.type === 'krmx/link' ? [frame.payload?.username as string] : []
  })
  let linkedAs: string | undefined
  let formerSelf: string | undefined
  let users = new Map<string, boolean>()
  let answered = 0
  for (const [index, frame] of wire.frames.entries()) {
    const username = frame.payload?.username as string
    const broken = (rule: string) => ({ violation: `frame ${index} ${JSON.stringify(frame)}: ${rule}`, linkedAs, users: [] })
    switch (frame.type) {
      case 'krmx/accepted':
        if (linkedAs !== undefined) return broken('accepted while linked')
        linkedAs = requested[answered++]
        users = new Map()
        formerSelf = undefined
        break
      case 'krmx/rejected':
        if (linkedAs !== undefined) return broken('rejected while linked')
        answered++
        break
      case 'krmx/joined':
        if (linkedAs === undefined) return broken('joined while not linked')
        if (users.has(username)) return broken('joined twice')
        users.set(username, false)
        break
      case 'krmx/linked':
        if (linkedAs === undefined) return broken('linked while not linked')
        if (users.get(username) !== false) return broken('linked a user not known or already linked')
        users.set(username, true)
        break
      case 'krmx/unlinked':
        if (linkedAs === undefined) return broken('unlinked while not linked')
        if (users.get(username) !== true) return broken('unlinked a user not known or not linked')
        users.set(username, false)
        if (username === linkedAs) {
          formerSelf = linkedAs
          linkedAs = undefined
          users = new Map()
        }
        break
      case 'krmx/left':
        if (username === formerSelf && linkedAs === undefined) {
          formerSelf = undefined
          break
        }
        if (linkedAs === undefined) return broken('left while not linked')
        if (users.get(username) !== false) return broken('left a user not known or still linked')
        users.delete(username)
        break
      default:
        if (linkedAs === undefined) return broken('an application message while not linked')
    }
  }
  return { violation: undefined, linkedAs, users: [...users].map(([username, isLinked]) => ({ username, isLinked })) }
}

/** Replays the server's events; returns the first that could not have happened, if any. */
function checkEvents (events: Array<[string, string]>): string | undefined {
  const users = new Map<string, boolean>()
  for (const [index, [event, username]] of events.entries()) {
    const linked = users.get(username)
    const broken = `event ${index} ${event} ${username} after ${JSON.stringify(events.slice(0, index))}`
    if (event === 'join') {
      if (linked !== undefined) return broken
      users.set(username, false)
    } else if (event === 'link') {
      if (linked !== false) return broken
      users.set(username, true)
    } else if (event === 'unlink') {
      if (linked !== true) return broken
      users.set(username, false)
    } else {
      if (linked !== false) return broken
      users.delete(username)
    }
  }
  return undefined
}

/** Waits until the server has handled everything this socket sent and everything it wrote has arrived: two ping round trips. */
async function settle (socket: WebSocket | undefined): Promise<void> {
  if (socket === undefined || socket.readyState !== WebSocket.OPEN) {
    return
  }
  for (let round = 0; round < 2; round++) {
    socket.ping()
    await once(socket, 'pong')
  }
}

const sortByName = (users: LinkUser[]) => [...users].sort((a, b) => a.username.localeCompare(b.username))

function ignoring (work: () => unknown): void {
  try {
    const result = work()
    if (result instanceof Promise) {
      result.catch(() => {}) // the stock client rejects what the protocol refused; the checks below judge it
    }
  } catch {
    // misuse the generated steps may ask for (kick an unknown user, send while not linked): coded errors, not the subject
  }
}

async function run (app: FastifyInstance, plan: Record<'join' | 'link' | 'unlink' | 'leave', Reaction>, commands: Command[]): Promise<void> {
  const linkServer = app.linkServer
  const events: Array<[string, string]> = []
  let budget = reactionBudget
  let bot = 0
  const react = (event: keyof typeof plan, username: string): void => {
    const what = plan[event]
    if (what === 'none' || budget-- <= 0) {
      return
    }
    const other = linkServer.getUsers().find(user => user.username !== username)
    const linkedOther = linkServer.getUsers().find(user => user.username !== username && user.isLinked)
    ignoring(() => {
      switch (what) {
        case 'joinBot': return linkServer.join(`reaction${bot++}`)
        case 'kickSelf': return linkServer.kick(username)
        case 'unlinkSelf': return linkServer.unlink(username)
        case 'kickOther': return other === undefined ? undefined : linkServer.kick(other.username)
        case 'unlinkOther': return linkedOther === undefined ? undefined : linkServer.unlink(linkedOther.username)
        case 'sendSelf': return linkServer.send(username, { type: 'note/self', payload: event })
        case 'broadcast': return linkServer.broadcast({ type: 'note/all', payload: `${event} ${username}` })
      }
    })
  }
  for (const event of ['join', 'link', 'unlink', 'leave'] as const) {
    linkServer.on(event, (username: string) => {
      events.push([event, username])
      react(event, username)
    })
  }
  const url = urlOf(app)
  const clients = Array.from({ length: clientCount }, () => createClient({ logger: false }))
  const sockets: RecordingWebSocket[] = []
  const connectClient = async (client: KrmxClient) => {
    await client.connect(url)
    sockets.push(socketOf(client) as RecordingWebSocket)
  }
  for (const client of clients) {
    await connectClient(client)
  }
  try {
    for (const [step, next] of commands.entries()) {
      if ('client' in next) {
        const client = clients[next.client]
        switch (next.kind) {
          case 'link': ignoring(() => client.link(next.name)); break
          case 'unlink': ignoring(() => client.unlink()); break
          case 'leave': ignoring(() => client.leave()); break
          case 'send': ignoring(() => client.send({ type: 'chat/say', payload: step })); break
          case 'reconnect': {
            await client.disconnect(true)
            const open = () => sockets.filter(socket => socket.readyState === WebSocket.OPEN).length
            await eventually(() => linkServer.getStats().connections === open(), () => `${linkServer.getStats().connections} connections, ${open()} open sockets`)
            await connectClient(client)
          }
        }
      } else {
        switch (next.kind) {
          case 'join': ignoring(() => linkServer.join(next.name)); break
          case 'kick': ignoring(() => linkServer.kick(next.name)); break
          case 'serverUnlink': ignoring(() => linkServer.unlink(next.name))
        }
      }
      for (const client of clients) {
        await settle(socketOf(client))
      }
      const serverUsers = linkServer.getUsers()
      for (const [index, socket] of sockets.entries()) {
        const wire = wires.get(socket) as Wire
        if (wire.thrown.length > 0) {
          throw new Error(`the stock client of socket ${index} threw ${String(wire.thrown[0])} on ${JSON.stringify(wire.frames)}`)
        }
        const history = checkHistory(wire)
        if (history.violation !== undefined) {
          throw new Error(`socket ${index}: ${history.violation}; all frames ${JSON.stringify(wire.frames)}`)
        }
        if (history.linkedAs !== undefined && socket.readyState === WebSocket.OPEN && JSON.stringify(history.users) !== JSON.stringify(serverUsers)) {
          throw new Error(`socket ${index} sees ${JSON.stringify(history.users)}, the server has ${JSON.stringify(serverUsers)}`)
        }
      }
      for (const [index, client] of clients.entries()) {
        if (client.getStatus() === 'linked' && JSON.stringify(sortByName(client.getUsers())) !== JSON.stringify(sortByName(serverUsers))) {
          throw new Error(`client ${index} has ${JSON.stringify(client.getUsers())}, the server ${JSON.stringify(serverUsers)}`)
        }
      }
      const eventError = checkEvents(events)
      if (eventError !== undefined) {
        throw new Error(eventError)
      }
    }
  } finally {
    for (const socket of sockets) {
      socket.terminate()
    }
  }
}

t.test(`${runs} runs of listeners calling the API at every event: every connection's history is consistent and the stock client agrees`, async t => {
  let steps = 0
  await fc.assert(fc.asyncProperty(reactionsArbitrary, fc.array(command, { minLength: 1, maxLength: 14 }), async (plan, commands) => {
    const app = Fastify()
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, linkTimeoutMilliseconds: 0, rateLimit: false, maxLinkAttempts: 0 })
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      await run(app, plan, commands)
      steps += commands.length
    } finally {
      await app.close()
    }
  }), { numRuns: runs })
  t.ok(steps >= runs, `${steps} steps were checked`)
})

t.test('the history check itself refuses the histories the stock client cannot follow', async t => {
  const wire = (frames: Array<[string, string?]>, sent = ['ann']): Wire => ({
    frames: frames.map(([type, username]) => username === undefined ? { type } : { type, payload: { username } }),
    sent: sent.map(username => JSON.stringify({ type: 'krmx/link', payload: { username } })),
    thrown: []
  })
  const violations = [
    checkHistory(wire([['krmx/accepted'], ['krmx/joined', 'bot'], ['krmx/joined', 'bot']])).violation,
    checkHistory(wire([['krmx/accepted'], ['krmx/unlinked', 'bot']])).violation,
    checkHistory(wire([['krmx/accepted'], ['krmx/joined', 'bob'], ['krmx/linked', 'bob'], ['krmx/left', 'bob']])).violation,
    checkHistory(wire([['krmx/joined', 'ann']])).violation,
    checkHistory(wire([['note/self']])).violation,
    checkHistory(wire([['krmx/accepted'], ['krmx/joined', 'ann'], ['krmx/linked', 'ann'], ['krmx/unlinked', 'ann'], ['krmx/left', 'ann']])).violation
  ]
  t.strictSame(violations, [
    'frame 2 {"type":"krmx/joined","payload":{"username":"bot"}}: joined twice',
    'frame 1 {"type":"krmx/unlinked","payload":{"username":"bot"}}: unlinked a user not known or not linked',
    'frame 3 {"type":"krmx/left","payload":{"username":"bob"}}: left a user not known or still linked',
    'frame 0 {"type":"krmx/joined","payload":{"username":"ann"}}: joined while not linked',
    'frame 0 {"type":"note/self"}: an application message while not linked',
    undefined
  ])
  t.strictSame([
    checkEvents([['join', 'a'], ['link', 'a'], ['unlink', 'a'], ['leave', 'a']]),
    checkEvents([['join', 'a'], ['unlink', 'a']]),
    checkEvents([['join', 'a'], ['join', 'a']])
  ], [undefined, 'event 1 unlink a after [["join","a"]]', 'event 1 join a after [["join","a"]]'])
})
