// One benchmarked server in a process of its own, driven over IPC by perf/bench/run.ts.
import { performance } from 'node:perf_hooks'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import { type ServerKind, startServer } from './servers.js'

const kind = process.argv[2] as ServerKind
const server = await startServer(kind)
let messages = 0
let first = 0
let last = 0
let waiting: { total: number, reply: () => void } | undefined
server.onMessage((username, message) => {
  if (message.type === 'rt/ping') {
    server.send(username, { type: 'rt/pong', payload: message.payload })
    return
  }
  if (message.type === 'burst/say') {
    // A chat room: every line a user says goes to everyone, from its message handler.
    server.broadcast({ type: 'burst/said', payload: { username, text: message.payload } })
    return
  }
  last = performance.now()
  if (messages++ === 0) {
    first = last
  }
  if (waiting !== undefined && messages >= waiting.total) {
    waiting.reply()
    waiting = undefined
  }
})

type Command =
  | { cmd: 'inbound', total: number }
  | { cmd: 'fanout', count: number, size: number }
  | { cmd: 'memory' }
  | { cmd: 'snapshot', file: string }
  | { cmd: 'close' }

process.on('message', (command: Command) => {
  const reply = (value: unknown): void => { process.send?.(value) }
  switch (command.cmd) {
    case 'inbound': {
      messages = 0
      waiting = { total: command.total, reply: () => reply({ messages, seconds: (last - first) / 1000 }) }
      reply({ ready: true })
      break
    }
    case 'fanout': {
      // One broadcast per turn of the event loop, as a server that broadcasts state updates does.
      const filler = 'x'.repeat(command.size - 40)
      let sent = 0
      const next = (): void => {
        server.broadcast({ type: 'fan', payload: { n: sent, filler } })
        if (++sent < command.count) {
          setImmediate(next)
        } else {
          reply({ broadcasts: sent })
        }
      }
      next()
      break
    }
    case 'memory': {
      globalThis.gc?.()
      const { heapUsed, rss } = process.memoryUsage()
      // V8 sizes its young generation by how fast the process allocated lately, not by what it holds.
      const youngGeneration = getHeapSpaceStatistics()
        .filter(space => space.space_name === 'new_space' || space.space_name === 'new_large_object_space')
        .reduce((sum, space) => sum + space.physical_space_size, 0)
      reply({ heapUsed, rss, youngGeneration })
      break
    }
    case 'snapshot': {
      globalThis.gc?.()
      reply({ file: writeHeapSnapshot(command.file) })
      break
    }
    case 'close': {
      server.close().then(() => process.exit(0), () => process.exit(1))
      break
    }
  }
})
process.send?.({ port: server.port })
