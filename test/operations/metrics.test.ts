import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { Type } from '@sinclair/typebox'
import t from 'tap'
import fastifyLinkServer from '../../index.js'
import { createMetrics } from '../../lib/metrics.js'
import { build } from '../helpers/app.js'
import { inject } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'
import { counted, scrape } from '../helpers/metrics.js'
import { eventually } from '../helpers/waits.js'

// Prometheus metrics: every counter by its labels, exactly, after a known history; the registry options.

t.test('every link rejection is counted by its reason: the protocol\'s own, and other for the application\'s', async t => {
  const app = await build(t, {
    metrics: true,
    maxUsers: 3,
    maxLinkAttempts: 0,
    authTimeoutMilliseconds: 50,
    setup: app => app.linkServer.on('authenticate', (username, _info, reject, markAsync) => {
      if (username === 'mallory') {
        reject('you are not welcome')
      } else if (username === 'slow') {
        markAsync(() => new Promise(() => {}))
      } else if (username === 'crash') {
        throw new Error('a bug')
      }
    })
  })
  const client = await inject(app)
  client.ws.send('not json')
  client.send({ type: 'chat', payload: {} })
  client.send({ type: 'krmx/link', payload: { username: 7 } })
  client.send({ type: 'krmx/link', payload: { username: 'alice', version: '0.4.0' } })
  client.requestLink('-')
  client.requestLink('mallory')
  client.requestLink('slow')
  t.strictSame((await client.take(7)).map(frame => (frame.payload as { reason: string }).reason), [
    'invalid message', 'unlinked connection', 'invalid link request', 'krmx server version mismatch (server=0.6.*,client=0.4.0)',
    'invalid username', 'you are not welcome', 'authentication timeout'
  ])
  client.requestLink('crash')
  t.strictSame(await client.take(1), [frames.rejected('authentication failed')])
  for (const username of ['alice', 'bob', 'carol']) {
    await app.linkServer.join(username)
  }
  client.requestLink('dave')
  t.strictSame(await client.take(1), [frames.rejected('server is full')])
  const alice = await inject(app)
  await alice.linked('alice', 4)
  client.requestLink('alice')
  t.strictSame(await client.take(1), [frames.rejected('user alice is already linked to a connection')])
  t.strictSame(await counted(app), {
    link_server_users: 3,
    link_server_rooms: 1,
    link_server_linked_users: 1,
    link_server_connections: 2,
    link_server_frames_received_total: 11,
    link_server_frames_sent_total: 15, // 11 rejections; accepted and the 3 users to alice
    link_server_links_total: 1,
    'link_server_link_rejections_total{reason="invalid_message"}': 1,
    'link_server_link_rejections_total{reason="unlinked_connection"}': 1,
    'link_server_link_rejections_total{reason="invalid_link_request"}': 1,
    'link_server_link_rejections_total{reason="version_mismatch"}': 1,
    'link_server_link_rejections_total{reason="invalid_username"}': 1,
    'link_server_link_rejections_total{reason="already_linked"}': 1,
    'link_server_link_rejections_total{reason="full"}': 1,
    'link_server_link_rejections_total{reason="authentication_timeout"}': 1,
    'link_server_link_rejections_total{reason="authentication_failed"}': 1,
    'link_server_link_rejections_total{reason="other"}': 1,
    link_server_authentication_duration_seconds_count: 4, // mallory, slow, crash, alice
    link_server_link_duration_seconds_count: 1
  })
})

t.test('unlinks and leaves are counted by cause, once, by the node that made them', async t => {
  const app = await build(t, {
    metrics: true,
    invalidMessage: 'unlink',
    reconnectWindowMilliseconds: 50,
    linkConflict: 'takeover',
    closeGraceMilliseconds: 10, // the taken-over connection, whose injectWS stream never ends the closing handshake
    messages: { 'chat/say': Type.Object({ text: Type.String() }) }
  })
  const clients = []
  for (const username of ['alice', 'bob', 'carol', 'dave', 'erin']) {
    const client = await inject(app)
    client.requestLink(username)
    await client.next('krmx/linked')
    clients.push(client)
  }
  const [alice, bob, carol] = clients
  const left = new Promise(resolve => app.linkServer.once('leave', resolve))
  alice.send({ type: 'krmx/unlink' }) // client; its window ends: window
  t.equal(await left, 'alice')
  bob.send({ type: 'chat/say', payload: { text: 7 } }) // invalid_message
  await bob.next('krmx/unlinked')
  await app.linkServer.unlink('carol') // server
  await carol.next('krmx/unlinked')
  const again = await inject(app)
  await again.link('carol') // carol is linked again, then leaves: client (the unlink and the leave)
  again.send({ type: 'krmx/leave' })
  await again.next('krmx/left')
  await app.linkServer.kick('dave') // kick (its unlink: server)
  const taking = await inject(app)
  await taking.link('erin') // the old connection is taken over: takeover
  t.strictSame(await clients[4].closed(), { code: 4001, reason: 'linked from another connection' })
  await eventually(() => app.linkServer.getStats().connections === 6, () => JSON.stringify(app.linkServer.getStats()))
  // Every frame sent is counted (and checked against what the clients received in the next test).
  const { link_server_frames_sent_total: sent, ...samples } = await counted(app)
  t.ok(sent > 0)
  t.strictSame(samples, {
    link_server_users: 2,
    link_server_rooms: 1,
    link_server_linked_users: 1,
    link_server_connections: 6,
    link_server_frames_received_total: 10,
    link_server_links_total: 7,
    'link_server_unlinks_total{cause="client"}': 2,
    'link_server_unlinks_total{cause="invalid_message"}': 1,
    'link_server_unlinks_total{cause="server"}': 2,
    'link_server_unlinks_total{cause="takeover"}': 1,
    'link_server_leaves_total{cause="client"}': 1,
    'link_server_leaves_total{cause="kick"}': 1,
    'link_server_leaves_total{cause="window"}': 1,
    'link_server_invalid_messages_total{type="chat/say",reason="invalid_payload"}': 1,
    link_server_authentication_duration_seconds_count: 7,
    link_server_link_duration_seconds_count: 7
  })
})

t.test('frames sent are every frame every client received; the close makes every user leave: close', async t => {
  const app = await build(t, { metrics: true })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  const bob = await inject(app)
  await bob.linked('bob', 5)
  await alice.take(2)
  app.linkServer.broadcast({ type: 'news', payload: 1 })
  app.linkServer.send('bob', { type: 'news', payload: 2 })
  await bob.take(2)
  await alice.take(1)
  const received = alice.frames().length + bob.frames().length
  t.equal(received, 13)
  t.equal((await scrape(app)).link_server_frames_sent_total, received)
  const closing = app.close()
  await closing
  const counts = (app.linkServer as unknown as { counts: { unlinks: Record<string, number>, leaves: Record<string, number> } }).counts
  t.strictSame([counts.unlinks.close, counts.leaves.close], [2, 2], 'both were unlinked, then left, as the server closed')
})

t.test('invalid messages are counted by type (one with a schema, else other) and reason', async t => {
  const app = await build(t, {
    metrics: true,
    strictMessages: true,
    maxDepth: 3,
    messages: { 'chat/say': Type.Object({ text: Type.String() }) }
  })
  const alice = await inject(app)
  await alice.linked('alice', 3)
  alice.send({ type: 'chat/say', payload: {} })
  alice.send({ type: 'chat/say', payload: { text: 'deep', nested: { deeper: { deepest: {} } } } })
  alice.send({ type: 'game/move', payload: 1 })
  alice.send({ type: 'game/jump', payload: 2 })
  await alice.settle()
  const samples = await counted(app)
  t.strictSame(Object.entries(samples).filter(([name]) => name.startsWith('link_server_invalid_messages_total')), [
    ['link_server_invalid_messages_total{type="chat/say",reason="invalid_payload"}', 1],
    ['link_server_invalid_messages_total{type="chat/say",reason="too_deep"}', 1],
    ['link_server_invalid_messages_total{type="other",reason="unregistered_type"}', 2]
  ])
  t.equal(app.linkServer.getStats().invalidMessages, 4)
})

t.test('metrics on an application registry: registered there, not served unless a path is given; removed at close', async t => {
  const registry = new Registry()
  for (let round = 0; round < 2; round++) {
    const app = Fastify()
    await app.register(fastifyLinkServer, { pingIntervalMilliseconds: 0, metrics: { registry } })
    await app.ready()
    t.equal((await app.inject('/metrics')).statusCode, 404)
    t.equal(registry.getSingleMetric('link_server_users') !== undefined, true, `round ${round}: registered`)
    await app.close()
    t.equal(registry.getSingleMetric('link_server_users'), undefined, `round ${round}: removed at close, so that another link server may register`)
  }
  const served = await build(t, { metrics: { registry, path: '/internal/metrics' } })
  t.equal((await scrape(served, '/internal/metrics')).link_server_users, 0)
})

t.test('a registry that has the metrics already fails register with a coded error, before any is added', async t => {
  const registry = new Registry()
  const first = await build(t, { metrics: { registry } })
  const names = (await registry.getMetricsAsJSON()).map(metric => metric.name)
  const second = Fastify()
  second.register(fastifyLinkServer, { metrics: { registry } })
  await t.rejects(async () => { await second.ready() }, {
    code: 'FST_LINK_INVALID_OPTION',
    message: `Invalid fastify-link-server option "metrics.registry": has ${names.join(', ')} already: every link server needs a registry of its own`
  })
  t.strictSame((await registry.getMetricsAsJSON()).map(metric => metric.name), names)
  t.equal(first.linkServer.getStatus(), 'listening')
})

t.test('without prom-client installed, metrics fail with a coded error that says what to install', async t => {
  const { metricsSource } = (await build(t)).linkServer as unknown as { metricsSource: Parameters<typeof createMetrics>[1] }
  await t.rejects(createMetrics(undefined, metricsSource, false, async () => { throw new Error("Cannot find package 'prom-client'") }), {
    code: 'FST_LINK_INVALID_OPTION',
    message: 'Invalid fastify-link-server option "metrics": needs the prom-client package (npm install prom-client): Cannot find package \'prom-client\''
  })
})

t.test('the metrics are served as Prometheus text, with HELP and TYPE', async t => {
  const app = await build(t, { metrics: true })
  const response = await app.inject('/metrics')
  const lines = response.body.split('\n')
  t.strictSame(lines.slice(0, 3), [
    '# HELP link_server_users Users in the user spaces this node serves (the whole cluster\'s, as this node mirrors them), linked or not',
    '# TYPE link_server_users gauge',
    'link_server_users 0'
  ])
  t.strictSame(lines.filter(line => line.startsWith('# TYPE')).map(line => line.slice('# TYPE '.length)), [
    'link_server_users gauge',
    'link_server_rooms gauge',
    'link_server_linked_users gauge',
    'link_server_connections gauge',
    'link_server_frames_received_total counter',
    'link_server_frames_sent_total counter',
    'link_server_links_total counter',
    'link_server_link_rejections_total counter',
    'link_server_unlinks_total counter',
    'link_server_leaves_total counter',
    'link_server_invalid_messages_total counter',
    'link_server_slow_consumers_total counter',
    'link_server_rate_limited_total counter',
    'link_server_authentication_duration_seconds histogram',
    'link_server_link_duration_seconds histogram'
  ])
})
