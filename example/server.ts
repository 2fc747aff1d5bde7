import { buildExample } from './app.js'

// PORT and HOST choose where to listen; the log names the URL: "link server listening" ... "url":"ws://127.0.0.1:3000/link/:room"
// With REDIS_URL (redis://127.0.0.1:6379), every instance started on that Redis shares the channels.
const app = await buildExample({ logger: true }, process.env.REDIS_URL)
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
