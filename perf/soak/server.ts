// The server side of `npm run soak:load`: the example chat server, plus one broadcast a second and the
// counters the soak run compares with what its clients saw, served at GET /soak/stats.
import { buildExample } from '../../example/app.js'

const app = await buildExample({ logger: { level: 'warn' } })
const linkServer = app.linkServer.typed<typeof import('../../example/app.js').chatOptions>()
const counters = { pingsReceived: 0, broadcasts: 0, broadcastDeliveries: 0, replayed: 0, replayLost: 0 }
/** The first tick each user was addressed: from it on, every tick must reach it once (or twice within the span replay allows). */
const firstTicks: Record<string, number> = {}
linkServer.on('join', username => { firstTicks[username] = tick })
linkServer.on('link', (_username, { replay }) => {
  counters.replayed += replay?.replayed ?? 0
  counters.replayLost += replay?.lost ?? 0
})
linkServer.handle('chat/ping', () => { counters.pingsReceived++ }) // after the example's handler, which answers with chat/pong
/** The live memory: after a full collection (the server runs with --expose-gc), so that garbage not yet collected does not count. */
const memory = (): { rss: number, heapUsed: number } => {
  globalThis.gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}
const idle = memory()
app.get('/soak/stats', async () => ({ counters, stats: linkServer.getStats(), memory: { idle, now: memory() } }))
// Stops the broadcasts, so that the clients can wait for the last one before they count.
app.post('/soak/stop', async () => {
  clearInterval(timer)
  return { ...counters, ticks: tick, firstTicks }
})
let tick = 0
const timer = setInterval(() => {
  // Every linked user gets it: that many frames are written.
  counters.broadcastDeliveries += linkServer.getStats().linkedUsers
  counters.broadcasts++
  linkServer.broadcast({ type: 'chat/said', payload: { id: String(tick), from: 'server', text: `tick ${tick++}` } })
}, 1000)
app.addHook('onClose', async () => clearInterval(timer))
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
console.log(JSON.stringify({ port: (app.server.address() as { port: number }).port }))
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
