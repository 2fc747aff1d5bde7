import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import { Client, connect, urlOf } from '../helpers/clients.js'
import { next } from '../helpers/events.js'
import { frames } from '../helpers/frames.js'
import { scrape } from '../helpers/metrics.js'
import { timerCount } from '../helpers/waits.js'
import type { TestBackend } from '../helpers/app.js'

/** The heartbeat tests, on `backend`. */
export default function suite ({ build, memoryOnly }: TestBackend): void {
  // First: the close of the next test's instance leaves timers behind for a while (the grace of its sockets).
  t.test('the heartbeat is one timer for all connections', memoryOnly(), async t => {
    const app = await build(t, { listen: true, pingIntervalMilliseconds: 60_000 })
    const before = timerCount()
    for (const username of ['alice', 'bob', 'carol']) {
      const client = await connect(app)
      client.requestLink(username)
      await client.take(1)
    }
    t.equal(timerCount(), before)
  })

  t.test('a connection that stops answering pings is terminated and its user unlinked; the others stay', async t => {
    const app = await build(t, { listen: true, pingIntervalMilliseconds: 100, metrics: true })
    const healthy = await connect(app)
    await healthy.linked('healthy', 3)
    const silentSocket = new WebSocket(urlOf(app), { autoPong: false })
    await once(silentSocket, 'open')
    const silent = new Client(silentSocket)
    await silent.linked('silent', 5)
    await healthy.take(2)
    let pings = 0
    silentSocket.on('ping', () => { pings++ })
    const closed = silent.closed()
    const [username] = await next(app, 'unlink')
    t.equal(username, 'silent')
    t.strictSame(await healthy.take(1), [frames.unlinked('silent')])
    t.equal((await closed).code, 1006, 'terminated, without a close frame')
    t.equal(pings, 1, 'pinged once, then terminated at the next beat for not answering')
    t.strictSame(app.linkServer.getUsers(), [{ username: 'healthy', isLinked: true }, { username: 'silent', isLinked: false }])
    t.equal((await scrape(app))['link_server_unlinks_total{cause="heartbeat"}'], 1)
  })

  t.test('pingIntervalMilliseconds 0 turns the heartbeat off', memoryOnly(), async t => {
    const before = timerCount()
    await build(t, { pingIntervalMilliseconds: 0 })
    t.equal(timerCount(), before)
    await build(t, { pingIntervalMilliseconds: 100 })
    t.equal(timerCount(), before + 1)
  })
}
