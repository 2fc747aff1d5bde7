// The clients of perf/bench/close.ts, in a process of their own so that their memory is not the server's
// heap: `linked` raw connections that link, count what they receive, and report the goodbye.
import { clientFrame, RawClient } from '../../support/raw-client.js'

const port = Number(process.argv[2])
const linked = Number(process.argv[3])
/** How many users exist before the first of these links: each link is sent all of them. */
const before = Number(process.argv[4])
type Command = { kind: 'count', expected: number } | { kind: 'closing' } | { kind: 'end' }
const report = (message: unknown): void => { process.send?.(message) }
const counts = new Array<number>(linked).fill(0)
const closes: number[] = []
let closing = false
let goodbyeFrames = 0
let goodbyeBytes = 0
const clients: RawClient[] = []

for (let index = 0; index < linked; index++) {
  const client = await RawClient.open(port)
  const accepted = new Promise<void>(resolve => {
    client.onFrame = payload => {
      counts[index]++
      if (closing) {
        goodbyeFrames++
        goodbyeBytes += payload.length
      } else if (counts[index] === 1 + before + 2 * (index + 1)) {
        resolve() // the whole user list has arrived
      }
    }
  })
  // A socket ends with the server's close frame, or without one when the server cut it off (0 here).
  let ended = false
  const end = (code: number): void => {
    if (ended) {
      return
    }
    ended = true
    closes.push(code)
    if (closes.length === linked) {
      report({ kind: 'closed', goodbyeFrames, goodbyeBytes, closedWith1001: closes.filter(code => code === 1001).length })
    }
  }
  client.onClose = end
  client.socket.on('close', () => end(0))
  client.send(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username: `linked${index}`, version: '0.6.10' } })))
  await accepted
  clients.push(client)
}
report({ kind: 'linked' })

process.on('message', (message: Command) => {
  if (message.kind === 'count') {
    const wait = (): void => {
      if (counts.every(count => count === message.expected)) {
        report({ kind: 'counted' })
      } else {
        setTimeout(wait, 50)
      }
    }
    wait()
  } else if (message.kind === 'closing') {
    closing = true
    report({ kind: 'ready' })
  } else {
    for (const client of clients) {
      client.close()
    }
    process.disconnect()
  }
})
