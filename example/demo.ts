import { buildExample } from './app.js'
import { servePage } from './page.js'

// npm start: the example server, with the demo page at / beside its WebSocket route at /link.
// Open http://127.0.0.1:3000/?username=alice and, in another window, http://127.0.0.1:3000/?username=bob.
const app = await buildExample({ logger: true }, process.env.REDIS_URL)
await servePage(app)
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
