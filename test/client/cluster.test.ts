import t from 'tap'
import WebSocket from 'ws'
import { createLinkClient, type LinkClientOptions } from '../../client.js'
import { node, nodeTimeoutMilliseconds, spawnNodeProcess } from '../helpers/cluster.js'
import { RedisServer } from '../helpers/redis-server.js'
import { eventually } from '../helpers/waits.js'

// fastify-link-server/client in front of a cluster of two on a real Redis, behind one list of URLs: the instance it
// is linked to is killed (SIGKILL, in a process of its own) while the other sends numbered messages.
const redis = await RedisServer.start(t)

t.test('the instance a client is on is killed: it links again on the other, and has every message once, in order', async t => {
  const sessions = { replay: { maxMessages: 10_000 }, reconnectWindowMilliseconds: 60_000 }
  const a = await spawnNodeProcess(t, redis, 'a', 'killed', sessions)
  const b = await node(t, redis, 'b', sessions, 'killed')
  const urls = [`ws://127.0.0.1:${a.port}/`, `ws://127.0.0.1:${(b.server.address() as { port: number }).port}/`]
  const alice = createLinkClient(urls, {
    WebSocket: WebSocket as unknown as LinkClientOptions['WebSocket'],
    reconnect: { initialDelayMilliseconds: 50, maxDelayMilliseconds: 400 },
    alreadyLinkedRetries: 100 // until the cluster declares a dead (its node timeout), alice is linked there
  })
  t.teardown(() => alice.close())
  const numbers: number[] = []
  const other: unknown[] = []
  alice.on('message', message => { if (message.type === 'count') numbers.push(message.payload as number) })
  alice.on('lost', count => other.push(['lost', count]))
  const statuses: string[] = []
  alice.on('status', status => statuses.push(status))
  await alice.link('alice')
  await eventually(() => b.linkServer.isLinked('alice'), () => JSON.stringify(b.linkServer.getUsers()))
  const count = 600
  let killedAt = 0
  for (let n = 1; n <= count; n++) {
    b.linkServer.send('alice', { type: 'count', payload: n })
    if (n === 200) {
      await eventually(() => numbers.length >= 100, () => `${numbers.length} numbers before the kill`)
      a.child.kill('SIGKILL')
      killedAt = Date.now()
    }
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  await eventually(() => numbers.length >= count, () => `${numbers.length} of ${count}: ${JSON.stringify(numbers.slice(-5))} ${JSON.stringify(statuses)}`,
    nodeTimeoutMilliseconds + 15_000)
  t.strictSame(numbers, Array.from({ length: count }, (_, i) => i + 1), `${count} numbers, each once, in order (back ${Date.now() - killedAt} ms after the kill)`)
  t.strictSame(other, [])
  t.strictSame(statuses, ['connecting', 'linking', 'linked', 'reconnecting', 'linked'])
  t.strictSame(b.linkServer.getUsers(), [{ username: 'alice', isLinked: true }], 'on b now')
})
