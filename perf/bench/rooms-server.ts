// One server of the rooms benchmark in a process of its own, driven over IPC by perf/bench/rooms.ts: this plugin
// with rooms on (`/link/:room`), or Socket.IO 4 with its rooms (`socket.join(room)`, `io.to(room).emit`).
import { createServer } from 'node:http'
import Fastify from 'fastify'
import { Server } from 'socket.io'
import fastifyLinkServer from '../../index.js'

export type RoomsServerKind = 'plugin' | 'socket.io'

interface RoomsServer {
  port: number
  /** One broadcast to each of `rooms`. */
  broadcast: (rooms: string[], payload: unknown) => void
  /** Creates `count` rooms named `<prefix><i>`, each with one user that is not linked (plugin) or no socket (Socket.IO has no such thing). */
  idleRooms: (prefix: string, count: number) => Promise<void>
  close: () => Promise<void>
}

async function startPlugin (): Promise<RoomsServer> {
  const app = Fastify()
  // The limits that the benchmark's load would trip are lifted; everything else is the default.
  await app.register(fastifyLinkServer, {
    path: '/link/:room',
    rateLimit: false,
    maxUsers: Infinity,
    maxRooms: Infinity,
    maxConnections: Infinity,
    maxBufferedBytes: Infinity,
    linkTimeoutMilliseconds: 0
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: (app.server.address() as { port: number }).port,
    broadcast: (rooms, payload) => {
      for (const room of rooms) {
        app.linkServer.room(room).broadcast({ type: 'fan', payload })
      }
    },
    idleRooms: async (prefix, count) => {
      for (let i = 0; i < count; i++) {
        await app.linkServer.room(`${prefix}${i}`).join('idle')
      }
    },
    close: async () => { await app.close() }
  }
}

async function startSocketIo (): Promise<RoomsServer> {
  const http = createServer()
  // WebSocket only, as the load generator speaks it; no per-message compression, as the plugin's default.
  const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false })
  io.on('connection', socket => {
    socket.on('join', (room: string, ack: () => void) => {
      Promise.resolve(socket.join(room)).then(() => ack(), () => ack())
    })
  })
  await new Promise<void>(resolve => http.listen(0, '127.0.0.1', resolve))
  return {
    port: (http.address() as { port: number }).port,
    broadcast: (rooms, payload) => {
      for (const room of rooms) {
        io.to(room).emit('fan', payload)
      }
    },
    idleRooms: async () => {},
    close: async () => {
      io.close()
      await new Promise(resolve => http.close(resolve))
    }
  }
}

type Command =
  | { cmd: 'fanout', rooms: string[], count: number, size: number }
  | { cmd: 'idle', prefix: string, count: number }
  | { cmd: 'memory' }
  | { cmd: 'close' }

const kind = process.argv[2] as RoomsServerKind
const server = kind === 'plugin' ? await startPlugin() : await startSocketIo()
process.on('message', (command: Command) => {
  const reply = (value: unknown): void => { process.send?.(value) }
  switch (command.cmd) {
    case 'fanout': {
      // One broadcast to every room per turn of the event loop, as a game server that ticks its tables.
      const filler = 'x'.repeat(Math.max(0, command.size - 40))
      let sent = 0
      const next = (): void => {
        server.broadcast(command.rooms, { n: sent, filler })
        if (++sent < command.count) {
          setImmediate(next)
        } else {
          reply({ broadcasts: sent * command.rooms.length })
        }
      }
      next()
      break
    }
    case 'idle':
      server.idleRooms(command.prefix, command.count).then(() => reply({ done: true }), (err: Error) => reply({ error: err.message }))
      break
    case 'memory': {
      globalThis.gc?.()
      globalThis.gc?.()
      reply({ heapUsed: process.memoryUsage().heapUsed })
      break
    }
    case 'close':
      server.close().then(() => process.exit(0), () => process.exit(1))
      break
  }
})
process.send?.({ port: server.port })
