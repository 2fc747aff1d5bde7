import WebSocket from 'ws'
import { createLinkClient } from '../client.js'
import type { chatOptions } from './app.js'

// Typed by the server's options: send takes its messages, listeners get its serverMessages. Browsers have a
// WebSocket; Node 20 has none, so the client is given the one of `ws`.
const client = createLinkClient<typeof chatOptions>(process.env.URL ?? 'ws://127.0.0.1:3000/link/general', { WebSocket })
client.on('message', (message) => {
  console.log(JSON.stringify(message))
  if (message.type === 'chat/said') {
    client.leave() // alice leaves the channel, and the connection closes
  }
})
await client.link(process.argv[2] ?? 'alice')
client.send({ type: 'chat/say', payload: { text: 'hello' } })
