import { createClient } from '@krmx/client'
import WebSocket from 'ws'

// Browsers have a WebSocket; Node 20 has none, so the client is given the one of `ws`.
const globals = globalThis as { WebSocket?: unknown }
globals.WebSocket ??= WebSocket

const client = createClient({ logger: false })
await client.connect(process.env.URL ?? 'ws://127.0.0.1:3000/link/general') // the channel general
await client.link(process.argv[2] ?? 'alice')
client.on('message', (message) => {
  console.log(JSON.stringify(message))
  if (message.type === 'chat/said') {
    client.disconnect(true).catch(() => {})
  }
})
client.send({ type: 'chat/say', payload: { text: 'hello' } })
