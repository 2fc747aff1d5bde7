// The load generator of `npm run soak:load`, in a process of its own: opens and links the connections,
// sends `chat/ping` at the given rate from each, drops and relinks some of them, and counts
// everything it sends and receives. Prints one JSON object when done.
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    connections: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '1' },
    duration: { type: 'string', default: '60' },
    drops: { type: 'string', default: '300' },
    cuts: { type: 'string', default: '0' },
    concurrency: { type: 'string', default: '100' }
  }
})
const url = `ws://127.0.0.1:${String(values.port)}/link`
const connections = Number(values.connections)
const rate = Number(values.rate)
const durationMilliseconds = Number(values.duration) * 1000
const drops = Math.min(Number(values.drops), connections)
/** Users whose TCP connection is cut without a close frame (ws.terminate()) while the server sends, then linked again. */
const cuts = Math.min(Number(values.cuts), connections - drops)
const concurrency = Number(values.concurrency)

const counts = { pingsSent: 0, pongsReceived: 0, pongsDistinct: 0, broadcastsReceived: 0, protocolFrames: 0, drops: 0, cuts: 0, relinks: 0, errors: 0 }
const errors: string[] = []
const latencies: number[] = []

/** One simulated user: a socket, linked to `username`, that can be dropped and relinked. */
class User {
  readonly username: string
  ws!: WebSocket
  linked = false
  /** How many times each server tick arrived. */
  readonly ticks = new Map<number, number>()
  /** The send times of the pongs that arrived: a replayed pong arrives twice. */
  readonly #answered = new Set<number>()
  #onLinked: (() => void) | undefined
  #onUnlinked: (() => void) | undefined

  constructor (username: string) {
    this.username = username
  }

  async link (): Promise<void> {
    this.ws = new WebSocket(url)
    this.ws.on('error', err => { counts.errors++; errors.push(`${this.username}: ${err.message}`) })
    this.ws.on('message', data => this.#receive(data as Buffer))
    await once(this.ws, 'open')
    const linked = new Promise<void>(resolve => { this.#onLinked = resolve })
    this.ws.send(JSON.stringify({ type: 'krmx/link', payload: { username: this.username, version: '0.6.0' } }))
    await linked
    this.linked = true
  }

  /** A drop: unlink (so that the server stops writing to it), close the socket, then open a new one and link again. */
  async dropAndRelink (): Promise<void> {
    this.linked = false
    const unlinked = new Promise<void>(resolve => { this.#onUnlinked = resolve })
    this.ws.send('{"type":"krmx/unlink"}')
    await unlinked
    const closed = once(this.ws, 'close')
    this.ws.close()
    await closed
    counts.drops++
    await this.link()
    counts.relinks++
  }

  /** A cut: the TCP connection ends without a close frame, as a phone's does; a new socket links again soon after. */
  async cutAndRelink (): Promise<void> {
    this.linked = false
    const closed = once(this.ws, 'close')
    this.ws.terminate()
    await closed
    counts.cuts++
    await new Promise(resolve => setTimeout(resolve, 200))
    await this.link()
    counts.relinks++
  }

  ping (): void {
    if (this.linked) {
      this.ws.send(`{"type":"chat/ping","payload":{"sent":${performance.now()}}}`)
      counts.pingsSent++
    }
  }

  #receive (data: Buffer): void {
    const text = data.toString()
    if (text.startsWith('{"type":"krmx/')) {
      counts.protocolFrames++
      if (this.#onLinked !== undefined && text === `{"type":"krmx/linked","payload":{"username":"${this.username}"}}`) {
        this.#onLinked()
        this.#onLinked = undefined
      } else if (this.#onUnlinked !== undefined && text === `{"type":"krmx/unlinked","payload":{"username":"${this.username}"}}`) {
        this.#onUnlinked()
        this.#onUnlinked = undefined
      } else if (text.startsWith('{"type":"krmx/rejected"')) {
        counts.errors++
        errors.push(`${this.username}: ${text}`)
      }
      return
    }
    const frame = JSON.parse(text) as { type: string, payload: { sent: number } }
    if (frame.type === 'chat/pong') {
      counts.pongsReceived++
      if (!this.#answered.has(frame.payload.sent)) {
        this.#answered.add(frame.payload.sent)
        counts.pongsDistinct++
        latencies.push(performance.now() - frame.payload.sent)
      }
    } else if (frame.type === 'chat/said') {
      counts.broadcastsReceived++
      const tick = Number((frame.payload as unknown as { text: string }).text.slice(5))
      this.ticks.set(tick, (this.ticks.get(tick) ?? 0) + 1)
    }
  }
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : Number(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))].toFixed(2))
}

const users = Array.from({ length: connections }, (_, index) => new User(`soak${index}`))
const linkStart = performance.now()
let nextUser = 0
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (nextUser < users.length) {
    await users[nextUser++].link()
  }
}))
const linkSeconds = (performance.now() - linkStart) / 1000
process.send?.({ phase: 'linked' })

// Each user pings `rate` times a second, spread over the second; `drops` users drop and relink at random times.
const start = performance.now()
const interval = 1000 / rate
const timers = users.map((user, index) => {
  let timer: NodeJS.Timeout
  const first = setTimeout(() => {
    user.ping()
    timer = setInterval(() => user.ping(), interval)
  }, (index / users.length) * interval)
  return () => { clearTimeout(first); clearInterval(timer) }
})
const dropping = users.slice(0, drops).map(async user => {
  await new Promise(resolve => setTimeout(resolve, Math.random() * (durationMilliseconds - 5000)))
  await user.dropAndRelink()
})
const cutting = users.slice(drops, drops + cuts).map(async user => {
  await new Promise(resolve => setTimeout(resolve, Math.random() * (durationMilliseconds - 5000)))
  await user.cutAndRelink()
})
await new Promise(resolve => setTimeout(resolve, durationMilliseconds))
for (const stop of timers) {
  stop()
}
await Promise.all([...dropping, ...cutting])
// The server stops broadcasting and says how many broadcast frames it wrote; then every frame still on its way arrives.
process.send?.({ phase: 'ran' })
const [{ broadcastDeliveries, ticks, firstTicks, replayed, replayLost }] = await once(process, 'message') as [{
  broadcastDeliveries: number, ticks: number, firstTicks: Record<string, number>, replayed: number, replayLost: number
}]
const drained = performance.now()
while ((counts.pongsDistinct < counts.pingsSent || counts.broadcastsReceived < broadcastDeliveries) && performance.now() - drained < 10_000) {
  await new Promise(resolve => setTimeout(resolve, 50))
}
// Every tick addressed to every user, accounted for: delivered once, twice (within the span replay allows), or not at all.
const accounted = { once: 0, twice: 0, missing: 0, replayed, replayLost }
for (const user of users) {
  for (let tick = firstTicks[user.username] ?? ticks; tick < ticks; tick++) {
    const times = user.ticks.get(tick) ?? 0
    if (times === 0) accounted.missing++
    else if (times === 1) accounted.once++
    else accounted.twice++
  }
}
const sorted = [...latencies].sort((a, b) => a - b)
const held = users.filter(user => user.linked && user.ws.readyState === WebSocket.OPEN).length
process.send?.({
  phase: 'done',
  result: {
    connectionsHeld: held,
    linkSeconds: Number(linkSeconds.toFixed(1)),
    runSeconds: Number(((performance.now() - start) / 1000).toFixed(1)),
    ...counts,
    ticks: accounted,
    latencyMilliseconds: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: percentile(sorted, 1) },
    firstErrors: errors.slice(0, 5)
  }
})
// The run's end is measured on the server before the connections go.
await once(process, 'message')
for (const user of users) {
  user.ws.terminate()
}
