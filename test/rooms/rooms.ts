import { createClient } from '@krmx/client'
import t from 'tap'
import WebSocket from 'ws'
import type { RoomHandle } from '../../index.js'
import type { TestBackend } from '../helpers/app.js'
import { connect, upgrade, urlOf } from '../helpers/clients.js'
import { LogRecorder, record } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'

const { accepted, joined, linked, unlinked, left, rejected } = frames
const path = '/link/:room'

/** The rooms tests, on `backend`. */
export default function suite ({ build, name }: TestBackend): void {
  const inCluster = name !== 'in memory'
  t.test('two rooms are two user spaces: one username linked in both, each room hearing only of its own', async t => {
    const app = await build(t, {
      listen: true,
      path,
      setup: app => app.linkServer.handle('chat/say', (from, payload, room) => room.broadcast({ type: 'chat/said', payload: { from, payload } }))
    })
    const events = record(app)
    const aliceA = await connect(app, '/link/a')
    t.strictSame(await aliceA.linked('alice', 3), [accepted, joined('alice'), linked('alice')])
    const aliceB = await connect(app, '/link/b')
    t.strictSame(await aliceB.linked('alice', 3), [accepted, joined('alice'), linked('alice')], 'alice links in room b too: another user space')
    const bobA = await connect(app, '/link/a')
    t.strictSame(await bobA.linked('bob', 5), [accepted, joined('alice'), linked('alice'), joined('bob'), linked('bob')])
    t.strictSame(await aliceA.take(2), [joined('bob'), linked('bob')])
    const carolB = await connect(app, '/link/b')
    t.strictSame(await carolB.linked('carol', 5), [accepted, joined('alice'), linked('alice'), joined('carol'), linked('carol')])
    t.strictSame(await aliceB.take(2), [joined('carol'), linked('carol')])

    aliceB.send({ type: 'chat/say', payload: 'in b' })
    const saidInB = { type: 'chat/said', payload: { from: 'alice', payload: 'in b' } }
    t.strictSame([...await aliceB.take(1), ...await carolB.take(1)], [saidInB, saidInB], 'the handler got room b: its broadcast reaches room b')
    app.linkServer.room('a').broadcast({ type: 'news', payload: 'for a' }, 'bob')
    app.linkServer.room('a').send('bob', { type: 'news', payload: 'for bob in a' })
    t.strictSame(await aliceA.take(1), [{ type: 'news', payload: 'for a' }])
    t.strictSame(await bobA.take(1), [{ type: 'news', payload: 'for bob in a' }])
    t.strictSame([await aliceA.settle(), await bobA.settle(), await aliceB.settle(), await carolB.settle()], [[], [], [], []], 'nothing crossed rooms')

    t.strictSame([app.linkServer.room('a').getUsers(), app.linkServer.room('b').getUsers()], [
      [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }],
      [{ username: 'alice', isLinked: true }, { username: 'carol', isLinked: true }]
    ])
    t.strictSame(await app.linkServer.getRooms(), ['a', 'b'])
    t.strictSame(app.linkServer.getStats(), { connections: 4, users: 4, rooms: 2, linkedUsers: 4, invalidMessages: 0 })

    aliceA.send({ type: 'krmx/leave' })
    t.strictSame(await aliceA.take(2), [unlinked('alice'), left('alice')])
    t.strictSame(await bobA.take(2), [unlinked('alice'), left('alice')])
    t.strictSame(await aliceB.settle(), [], 'alice is still in room b, linked')
    t.strictSame([app.linkServer.room('a').isLinked('alice'), app.linkServer.room('b').isLinked('alice')], [false, true])
    t.strictSame(events, [
      ['roomStart', 'room:a'], ['join', 'alice', 'room:a'], ['link', 'alice', 'room:a'],
      ['roomStart', 'room:b'], ['join', 'alice', 'room:b'], ['link', 'alice', 'room:b'],
      ['join', 'bob', 'room:a'], ['link', 'bob', 'room:a'],
      ['join', 'carol', 'room:b'], ['link', 'carol', 'room:b'],
      ['message', 'alice', { type: 'chat/say', payload: 'in b' }, 'room:b'],
      ['unlink', 'alice', 'room:a'], ['leave', 'alice', 'room:a']
    ])
  })

  t.test('the published @krmx/client works unchanged against a room URL', async t => {
    const globals = globalThis as unknown as { WebSocket?: unknown }
    globals.WebSocket ??= WebSocket
    const app = await build(t, { listen: true, path })
    app.linkServer.on('message', (username, message, room) => room.broadcast({ type: 'echo', payload: { username, room: room.name, message } }))
    const alice = createClient({ logger: false })
    const bob = createClient({ logger: false })
    await alice.connect(urlOf(app, '/link/table-1'))
    await bob.connect(urlOf(app, '/link/table-2'))
    await alice.link('alice')
    await bob.link('bob')
    t.strictSame([alice.getUsers(), bob.getUsers()], [[{ username: 'alice', isLinked: true }], [{ username: 'bob', isLinked: true }]],
      'each sees its own table only')
    const echoed = new Promise(resolve => alice.on('message', resolve))
    alice.send({ type: 'hello', payload: 1 })
    t.strictSame(await echoed, { type: 'echo', payload: { username: 'alice', room: 'table-1', message: { type: 'hello', payload: 1 } } })
    await alice.leave()
    await bob.leave()
    await alice.disconnect()
    await bob.disconnect()
  })

  t.test('a room starts with its first user and ends with its last; an idle handle creates nothing', async t => {
    const app = await build(t, { listen: true, path })
    const events = record(app)
    const lobby = app.linkServer.room('lobby')
    await lobby.load() // in a cluster, this instance serves it from now on: its reads answer
    t.strictSame([lobby.name, lobby.getUsers(), lobby.getUser('alice'), lobby.isLinked('alice')], ['lobby', [], undefined, false])
    lobby.broadcast({ type: 'nobody', payload: 'hears this' })
    t.throws(() => lobby.send('alice', { type: 'x' }), { code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot send a message: user "alice" does not exist' })
    t.throws(() => lobby.unlink('alice'), { code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot unlink a user: user "alice" does not exist' })
    t.throws(() => lobby.kick('alice'), { code: 'FST_LINK_UNKNOWN_USER', message: 'Cannot kick a user: user "alice" does not exist' })
    t.strictSame(await app.linkServer.getRooms(), [], 'a handle makes no room')

    const alice = await connect(app, '/link/lobby')
    t.strictSame(await app.linkServer.getRooms(), [], 'nor does a connection that is not linked')
    await alice.linked('alice', 3)
    await lobby.join('bob')
    t.strictSame(await alice.take(1), [joined('bob')])
    t.strictSame(await app.linkServer.getRooms(), ['lobby'])
    await lobby.kick('bob')
    alice.send({ type: 'krmx/leave' })
    await alice.take(3)
    t.strictSame(await app.linkServer.getRooms(), [])
    t.strictSame(events, [
      ['roomStart', 'room:lobby'], ['join', 'alice', 'room:lobby'], ['link', 'alice', 'room:lobby'],
      ['join', 'bob', 'room:lobby'], ['leave', 'bob', 'room:lobby'],
      ['unlink', 'alice', 'room:lobby'], ['leave', 'alice', 'room:lobby'], ['roomEnd', 'room:lobby']
    ])
    t.strictSame(app.linkServer.getStats(), { connections: 1, users: 0, rooms: 0, linkedUsers: 0, invalidMessages: 0 })

    await lobby.join('carol')
    t.strictSame(await app.linkServer.getRooms(), ['lobby'], 'the API makes a room with its first user')
    t.strictSame(events.slice(8), [['roomStart', 'room:lobby'], ['join', 'carol', 'room:lobby']])
  })

  t.test('with a reconnection window, a room ends when its last user\'s window ends', async t => {
    const app = await build(t, { listen: true, path, reconnectWindowMilliseconds: 200 })
    const events = record(app)
    const alice = await connect(app, '/link/r1')
    await alice.linked('alice', 3)
    const ended = new Promise<RoomHandle>(resolve => app.linkServer.once('roomEnd', resolve))
    alice.close()
    t.equal((await ended).name, 'r1')
    t.strictSame(events, [
      ['roomStart', 'room:r1'], ['join', 'alice', 'room:r1'], ['link', 'alice', 'room:r1'],
      ['unlink', 'alice', 'room:r1'], ['leave', 'alice', 'room:r1'], ['roomEnd', 'room:r1']
    ])
    t.strictSame(await app.linkServer.getRooms(), [])
  })

  t.test('acceptNewRooms: false: only rooms the server made can be linked to, until they end', async t => {
    const app = await build(t, { listen: true, path, acceptNewRooms: false })
    const alice = await connect(app, '/link/t1')
    t.strictSame(await alice.linked('alice', 1), [rejected('room t1 does not exist')])
    await app.linkServer.room('t1').join('host')
    t.strictSame(await alice.linked('alice', 4), [accepted, joined('host'), joined('alice'), linked('alice')])
    await app.linkServer.room('t1').kick('host')
    t.strictSame(await alice.take(1), [left('host')])
    alice.send({ type: 'krmx/leave' })
    t.strictSame(await alice.take(2), [unlinked('alice'), left('alice')])
    t.strictSame(await alice.linked('alice', 1), [rejected('room t1 does not exist')], 'the room ended with its last user: it cannot be linked to again')
  })

  t.test('maxRooms bounds the rooms: a link that would make one more is rejected with server is full, a join throws', async t => {
    const app = await build(t, { listen: true, path, maxRooms: 2 })
    const a = await connect(app, '/link/a')
    await a.linked('alice', 3)
    await app.linkServer.room('b').join('bob')
    const c = await connect(app, '/link/c')
    t.strictSame(await c.linked('carol', 1), [rejected('server is full')])
    t.throws(() => app.linkServer.room('c').join('carol'), {
      code: 'FST_LINK_TOO_MANY_ROOMS', statusCode: 503, message: 'Cannot create room "c": 2 rooms exist (maxRooms)'
    })
    const a2 = await connect(app, '/link/a')
    t.strictSame(await a2.linked('dave', 5), [accepted, joined('alice'), linked('alice'), joined('dave'), linked('dave')], 'a room that exists takes users')
    await app.linkServer.room('b').kick('bob')
    t.strictSame(await c.linked('carol', 3), [accepted, joined('carol'), linked('carol')], 'a room ended: one more may start')
    t.strictSame(await app.linkServer.getRooms(), ['a', 'c'])
  })

  t.test('a link being authenticated holds the room it would create: a join into another room past maxRooms is refused', async t => {
    const app = await build(t, { listen: true, path, maxRooms: 1 })
    let admit: () => void = () => {}
    app.linkServer.on('authenticate', (_username, _info, _reject, markAsync) => markAsync(async () => await new Promise<void>(resolve => { admit = resolve })))
    const authenticating = new Promise(resolve => app.linkServer.once('authenticate', resolve))
    const alice = await connect(app, '/link/a')
    alice.requestLink('alice')
    await authenticating
    await t.rejects(app.linkServer.room('b').join('bob'), {
      code: 'FST_LINK_TOO_MANY_ROOMS', message: 'Cannot create room "b": 1 rooms exist (maxRooms)'
    })
    admit()
    t.strictSame(await alice.take(3), [accepted, joined('alice'), linked('alice')])
    t.strictSame(await app.linkServer.getRooms(), ['a'])
  })

  t.test('an invalid room name is refused at the upgrade with HTTP 404, and by room() with FST_LINK_INVALID_ROOM', async t => {
    const logs = new LogRecorder()
    const app = await build(t, {
      listen: true,
      path,
      isValidRoom: room => {
        if (room === 'explode') throw new Error('boom')
        return room !== 'forbidden' && /^[a-z{}]+$/.test(room)
      },
      fastify: { logger: { level: 'error', stream: logs.stream } }
    })
    const notFound = { status: 404, body: { statusCode: 404, code: 'FST_LINK_INVALID_ROOM', error: 'Not Found', message: 'No such room' } }
    for (const room of ['forbidden', 'explode', 'UPPER', 'a-b']) {
      const { status, body } = await upgrade(urlOf(app, `/link/${room}`))
      t.strictSame({ status, body }, notFound, room)
    }
    t.strictSame(logs.lines.map(line => [line.msg, line.room]), [['isValidRoom threw; the room is treated as invalid', 'explode']])
    t.strictSame((await upgrade(urlOf(app, '/link/ok'))).status, 101)
    t.throws(() => app.linkServer.room('forbidden'), { code: 'FST_LINK_INVALID_ROOM', statusCode: 400, message: 'Invalid room name "forbidden": isValidRoom refuses it' })
    t.throws(() => app.linkServer.room(42 as unknown as string), { code: 'FST_LINK_INVALID_ROOM', message: 'Invalid room name "42": isValidRoom refuses it' })

    const plain = await build(t, { listen: true, path })
    for (const room of ['a%7Bb%7D', 'x'.repeat(65), 'a%20b', '%C3%A9']) {
      const { status, body } = await upgrade(urlOf(plain, `/link/${room}`))
      t.strictSame({ status, body }, notFound, `the default rule refuses ${room.slice(0, 12)}`)
    }
    for (const room of ['x'.repeat(64), 'A.b_c-9']) {
      t.equal((await upgrade(urlOf(plain, `/link/${room}`))).status, 101, 'and takes letters, digits, ., _ and -, up to 64')
    }
    const decoded = await connect(plain, '/link/a%2Eb')
    await decoded.linked('alice', 3)
    t.strictSame(await plain.linkServer.getRooms(), ['a.b'], 'the name is the path segment as Fastify decodes it')
  })

  t.test('with rooms on the user API is per room: linkServer\'s own throws FST_LINK_ROOM_REQUIRED, naming room(name)', async t => {
    const app = await build(t, { path })
    const server = app.linkServer
    const calls: Array<[string, string, () => unknown]> = [
      ['send a message', 'send', () => server.send('a', { type: 'x' })],
      ['broadcast a message', 'broadcast', () => server.broadcast({ type: 'x' })],
      ['join a user', 'join', () => server.join('a')],
      ['unlink a user', 'unlink', () => server.unlink('a')],
      ['kick a user', 'kick', () => server.kick('a')],
      ['list the users', 'getUsers', () => server.getUsers()],
      ['get a user', 'getUser', () => server.getUser('a')],
      ['ask whether a user is linked', 'isLinked', () => server.isLinked('a')]
    ]
    for (const [action, method, call] of calls) {
      t.throws(call, {
        code: 'FST_LINK_ROOM_REQUIRED',
        message: `Cannot ${action} on linkServer: rooms are on (the path has :room), so every user is in a room; call linkServer.room(name).${method}() instead`
      })
    }
    t.throws(() => server.room(''), { code: 'FST_LINK_INVALID_ROOM' }, 'the default rule has no empty name')
  })

  t.test('with rooms off the endpoint is one room, named "": the handle of every event, and room("")', async t => {
    const app = await build(t, { listen: true })
    const endpoint = app.linkServer.room('')
    t.equal(endpoint.name, '')
    t.equal(await endpoint.load(), undefined, 'served from the start: loaded')
    t.throws(() => app.linkServer.room('a'), {
      code: 'FST_LINK_ROOMS_OFF', message: 'Cannot open room "a": rooms are off (the path has no :room parameter); the endpoint is one room, room("")'
    })
    const rooms: Array<[string, RoomHandle]> = []
    app.linkServer.on('join', (_username, room) => rooms.push(['join', room]))
    app.linkServer.on('link', (_username, _info, room) => rooms.push(['link', room]))
    app.linkServer.on('message', (_username, _message, room) => rooms.push(['message', room]))
    app.linkServer.handle('hi', (_username, _payload, room) => { rooms.push(['handler', room]) })
    app.linkServer.on('authenticate', (_username, info) => { rooms.push(['authenticate', info.room]) })
    const alice = await connect(app)
    await alice.linked('alice', 3)
    alice.send({ type: 'hi' })
    await alice.settle()
    t.strictSame(rooms.map(([event, room]) => [event, room === endpoint]), [['authenticate', true], ['join', true], ['link', true], ['message', true], ['handler', true]])
    await endpoint.join('bob')
    t.strictSame([endpoint.getUsers(), app.linkServer.getUsers()], [
      [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }],
      [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }]
    ], 'the same user space')
    t.strictSame(await app.linkServer.getRooms(), [''])
    t.strictSame(app.linkServer.getStats(), { connections: 1, users: 2, rooms: 1, linkedUsers: 1, invalidMessages: 0 })
  })

  t.test('with rooms on, the log lines of users name their room', async t => {
    const logs = new LogRecorder()
    const app = await build(t, { listen: true, path, fastify: { logger: { level: 'info', stream: logs.stream } } })
    const alice = await connect(app, '/link/den')
    await alice.linked('alice', 3)
    await app.linkServer.room('den').join('bob')
    await app.linkServer.room('den').kick('bob')
    const users = logs.lines.filter(line => line.username !== undefined).map(line => [line.msg, line.username, line.room])
    t.strictSame(users, [
      ['user joined', 'alice', 'den'], ['user linked', 'alice', 'den'],
      ['user joined', 'bob', 'den'], ['user kicked', 'bob', 'den'], ['user left', 'bob', 'den']
    ])
  })

  t.test('authenticate learns the room: an application can refuse a user a room', async t => {
    const app = await build(t, { listen: true, path })
    app.linkServer.on('authenticate', (username, info, reject) => {
      if (info.room.name === 'vip' && username !== 'alice') {
        reject(`${username} may not enter ${info.room.name}`)
      }
    })
    const bobVip = await connect(app, '/link/vip')
    t.strictSame(await bobVip.linked('bob', 1), [rejected('bob may not enter vip')])
    const bobHall = await connect(app, '/link/hall')
    t.strictSame(await bobHall.linked('bob', 3), [accepted, joined('bob'), linked('bob')])
    const aliceVip = await connect(app, '/link/vip')
    t.strictSame(await aliceVip.linked('alice', 3), [accepted, joined('alice'), linked('alice')])
    t.strictSame(await app.linkServer.getRooms(), ['hall', 'vip'])
  })

  t.test('sessions hold per room: a takeover in one room leaves the other alone; replay replays a room\'s own messages', async t => {
    const app = await build(t, { listen: true, path, linkConflict: 'takeover', reconnectWindowMilliseconds: 60_000, replay: {} })
    const aliceA = await connect(app, '/link/a')
    await aliceA.linked('alice', 3)
    const aliceB = await connect(app, '/link/b')
    await aliceB.linked('alice', 3)
    const again = await connect(app, '/link/a')
    t.strictSame(await again.linked('alice', 3), [accepted, joined('alice'), linked('alice')])
    t.strictSame(await aliceA.closed(), { code: 4001, reason: 'linked from another connection' })
    t.strictSame(await aliceB.settle(), [], 'room b\'s link is untouched')
    again.close()
    await app.linkServer.room('a').broadcast({ type: 'missed', payload: 'in a' })
    app.linkServer.room('b').broadcast({ type: 'live', payload: 'in b' })
    t.strictSame(await aliceB.take(1), [{ type: 'live', payload: 'in b' }])
    const back = await connect(app, '/link/a')
    t.strictSame(await back.linked('alice', 4), [accepted, joined('alice'), linked('alice'), { type: 'missed', payload: 'in a' }],
      'room a replays what room a sent, and nothing of room b')
  })

  t.test('a server that closes tells the users of every room goodbye, and each room ends', async t => {
    const app = await build(t, { listen: true, path })
    const events = record(app)
    const clients = []
    for (const room of ['x', 'y']) {
      for (const username of ['ann', 'ben']) {
        const client = await connect(app, `/link/${room}`)
        await client.linked(username, username === 'ann' ? 3 : 5)
        clients.push(client)
      }
    }
    events.length = 0
    await app.close()
    for (const client of clients) {
      const username = clients.indexOf(client) % 2 === 0 ? 'ann' : 'ben'
      // In a cluster the rooms outlive an instance: its users are unlinked, and may link again on another.
      t.strictSame(client.unread().filter(frame => frame.type !== 'krmx/joined' && frame.type !== 'krmx/linked'),
        inCluster ? [unlinked(username)] : [unlinked(username), left(username)])
      t.strictSame(await client.closed(), { code: 1001, reason: 'server closing' })
    }
    if (inCluster) {
      // Each room's unlinks in its order; the rooms are closed side by side.
      t.strictSame([events.filter(event => event[2] === 'room:x'), events.filter(event => event[2] === 'room:y'), events.at(-1), events.length], [
        [['unlink', 'ann', 'room:x'], ['unlink', 'ben', 'room:x']], [['unlink', 'ann', 'room:y'], ['unlink', 'ben', 'room:y']], ['close'], 5
      ])
      return
    }
    t.strictSame(events, [
      ['unlink', 'ann', 'room:x'], ['leave', 'ann', 'room:x'], ['unlink', 'ben', 'room:x'], ['leave', 'ben', 'room:x'], ['roomEnd', 'room:x'],
      ['unlink', 'ann', 'room:y'], ['leave', 'ann', 'room:y'], ['unlink', 'ben', 'room:y'], ['leave', 'ben', 'room:y'], ['roomEnd', 'room:y'],
      ['close']
    ])
  })

  t.test('listeners that act on rooms re-entrantly: a roomEnd listener that joins again starts the room again', async t => {
    const app = await build(t, { listen: true, path })
    const events = record(app)
    let restarts = 0
    let rejoined: Promise<void> | undefined
    app.linkServer.on('roomEnd', room => {
      if (restarts++ === 0) {
        rejoined = room.join('keeper')
      }
    })
    const alice = await connect(app, '/link/loop')
    await alice.linked('alice', 3)
    alice.send({ type: 'krmx/leave' })
    await alice.take(2)
    await rejoined // at once in memory; committed through Redis in a cluster
    t.strictSame(events.slice(3), [
      ['unlink', 'alice', 'room:loop'], ['leave', 'alice', 'room:loop'], ['roomEnd', 'room:loop'],
      ['roomStart', 'room:loop'], ['join', 'keeper', 'room:loop']
    ])
    t.strictSame(app.linkServer.room('loop').getUsers(), [{ username: 'keeper', isLinked: false }])
    t.strictSame(await alice.linked('alice', 4), [accepted, joined('keeper'), joined('alice'), linked('alice')], 'the connection is still in the room')
  })
}
