// The load generator of the benchmark, in a process of its own, driven over IPC by perf/bench/run.ts.
import { performance } from 'node:perf_hooks'
import { clientFrame, RawClient } from '../../support/raw-client.js'

const port = Number(process.argv[2])
/** The prefix of the usernames this load generator links, so that two of them can load one cluster. */
const prefix = process.argv[3] ?? 'b'
const clients: RawClient[] = []
const version = '0.5.5' // the reference server accepts 0.5.x only; this plugin accepts it too

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * Opens and links `count` clients, `concurrency` at a time; the time of each is from open to the last frame of its user
 * list. With `session`, each asks for the session extension, as fastify-link-server/client does (numbered messages).
 */
async function link (count: number, concurrency: number, session = false): Promise<{ seconds: number, p50: number, p99: number }> {
  const durations: number[] = []
  const start = performance.now()
  let next = clients.length
  const end = clients.length + count
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < end) {
      const username = `${prefix}${next++}`
      const opened = performance.now()
      const client = await RawClient.open(port)
      // Its own krmx/linked is the last frame of the user list: users come in join order, and it joined last.
      const own = Buffer.from(JSON.stringify({ type: 'krmx/linked', payload: { username } }))
      await new Promise<void>(resolve => {
        client.onFrame = payload => {
          if (payload.equals(own)) {
            client.onFrame = () => {}
            resolve()
          }
        }
        client.send(clientFrame(JSON.stringify({ type: 'krmx/link', payload: session ? { username, version, session: {} } : { username, version } })))
      })
      durations.push(performance.now() - opened)
      clients.push(client)
    }
  }))
  return { seconds: (performance.now() - start) / 1000, p50: percentile(durations, 0.5), p99: percentile(durations, 0.99) }
}

/** Every client sends `perClient` small messages at once, as fast as its socket takes them. */
function inbound (perClient: number): { sent: number } {
  const burst = Buffer.concat(Array.from({ length: perClient }, () => clientFrame('{"type":"in/msg","payload":1}')))
  for (const client of clients) {
    client.send(burst)
  }
  return { sent: perClient * clients.length }
}

/** Resolves when `total` frames whose type starts with `prefix` have arrived over all clients. */
async function expect (prefix: string, total: number): Promise<{ frames: number, seconds: number }> {
  const marker = Buffer.from(`{"type":"${prefix}`)
  let frames = 0
  let first = 0
  return await new Promise(resolve => {
    for (const client of clients) {
      client.onFrame = payload => {
        if (payload.subarray(0, marker.length).equals(marker)) {
          if (frames++ === 0) {
            first = performance.now()
          }
          if (frames === total) {
            resolve({ frames, seconds: (performance.now() - first) / 1000 })
          }
        }
      }
    }
  })
}

/**
 * The first `senders` clients each say `messages` lines of chat, one every `interval` ms from a start of its
 * own within the first interval, as people in a room do: the server broadcasts each line from its message
 * handler, and the lines of many senders arrive in one read, so that broadcasts come in bursts.
 */
function burst (senders: number, messages: number, interval: number): { sent: number } {
  const line = clientFrame(JSON.stringify({ type: 'burst/say', payload: 'x'.repeat(48) }))
  clients.slice(0, senders).forEach((client, index) => {
    let left = messages
    const say = (): void => {
      client.send(line)
      if (--left > 0) setTimeout(say, interval)
    }
    setTimeout(say, (index / senders) * interval)
  })
  return { sent: senders * messages }
}

/** Each client sends `rate` pings a second for `seconds`; the latency is until its pong arrives. */
async function roundTrip (rate: number, seconds: number): Promise<{ count: number, p50: number, p99: number }> {
  const latencies: number[] = []
  const expected = clients.length * rate * seconds
  const done = new Promise<void>(resolve => {
    for (const client of clients) {
      client.onFrame = payload => {
        if (payload.includes('"rt/pong"')) {
          const sent = Number(/"payload":([\d.]+)/.exec(payload.toString())?.[1])
          latencies.push(performance.now() - sent)
          if (latencies.length === expected) resolve()
        }
      }
    }
  })
  const interval = 1000 / rate
  clients.forEach((client, index) => {
    let left = rate * seconds
    const ping = (): void => {
      client.send(clientFrame(`{"type":"rt/ping","payload":${performance.now()}}`))
      if (--left > 0) setTimeout(ping, interval)
    }
    setTimeout(ping, (index / clients.length) * interval)
  })
  await done
  return { count: latencies.length, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
}

type Command =
  | { cmd: 'link', count: number, concurrency: number, session?: boolean }
  | { cmd: 'inbound', perClient: number }
  | { cmd: 'expect', prefix: string, total: number }
  | { cmd: 'roundtrip', rate: number, seconds: number }
  | { cmd: 'burst', senders: number, messages: number, interval: number }
  | { cmd: 'close' }

process.on('message', (command: Command) => {
  const reply = (value: unknown): void => { process.send?.(value) }
  switch (command.cmd) {
    case 'link': link(command.count, command.concurrency, command.session).then(reply, err => reply({ error: String(err) })); break
    case 'inbound': reply(inbound(command.perClient)); break
    case 'expect':
      expect(command.prefix, command.total).then(reply, err => reply({ error: String(err) }))
      reply({ armed: true })
      break
    case 'burst': reply(burst(command.senders, command.messages, command.interval)); break
    case 'roundtrip': roundTrip(command.rate, command.seconds).then(reply, err => reply({ error: String(err) })); break
    case 'close':
      for (const client of clients) client.close()
      process.exit(0)
  }
})
process.send?.({ ready: true })
