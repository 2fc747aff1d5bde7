// The three servers of the benchmark behind one interface: this plugin in Fastify, the Krmx
// reference server, and a bare `ws` server that does the minimum the protocol needs.
import { createServer as createKrmxServer } from '@krmx/server'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import fastifyLinkServer from '../../index.js'

export type ServerKind = 'plugin' | 'plugin-typed' | 'plugin-replay' | 'plugin-metrics' | 'plugin-cluster' | 'plugin-cluster-replay' | 'krmx' | 'bare' | 'bare-coalesced'
export type Message = { type: string, payload?: unknown }

/** ws sends a Buffer as it is when it is told the frame is text. */
const textFrame = { binary: false }

export interface BenchServer {
  port: number
  onMessage: (listener: (username: string, message: Message) => void) => void
  send: (username: string, message: Message) => void
  broadcast: (message: Message) => void
  close: () => Promise<void>
}

export async function startServer (kind: ServerKind): Promise<BenchServer> {
  switch (kind) {
    case 'plugin': return await startPlugin(false)
    case 'plugin-typed': return await startPlugin(true)
    case 'plugin-replay': return await startPlugin(false, undefined, true)
    case 'plugin-metrics': return await startPlugin(false, undefined, false, true)
    case 'plugin-cluster': return await startPlugin(false, process.env.REDIS_URL)
    case 'plugin-cluster-replay': return await startPlugin(false, process.env.REDIS_URL, true)
    case 'krmx': return await startKrmx()
    case 'bare': return await startBare(false)
    case 'bare-coalesced': return await startBare(true)
  }
}

/**
 * `typed`: with TypeBox schemas for the message types of the benchmark, checked on every message.
 * `redis`: a node of a cluster on that Redis (perf/bench/cluster.ts). `replay`: missed-message replay on (every
 * message kept for its recipients until they confirm it). `metrics`: Prometheus metrics on, scraped every second.
 */
async function startPlugin (typed: boolean, redis?: string, replay = false, metrics = false): Promise<BenchServer> {
  const app = Fastify()
  // The limits that a benchmark's load would trip are lifted; everything else is the default.
  await app.register(fastifyLinkServer, {
    rateLimit: false,
    maxUsers: Infinity,
    maxConnections: Infinity,
    maxBufferedBytes: Infinity,
    linkTimeoutMilliseconds: 0,
    ...(redis === undefined ? {} : { cluster: { redis, namespace: 'bench', nodeId: process.env.NODE_ID } }),
    ...(replay ? { replay: {} } : {}),
    ...(metrics ? { metrics: true } : {}),
    ...(typed ? { messages: { 'in/msg': Type.Integer(), 'rt/ping': Type.Number() }, strictMessages: true } : {})
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // A Prometheus server scrapes every 15 s or so; every second is a harder test of what a scrape costs.
  const scraping = metrics ? setInterval(() => { app.inject('/metrics').catch(() => {}) }, 1_000) : undefined
  return {
    port: (app.server.address() as { port: number }).port,
    onMessage: listener => { app.linkServer.on('message', listener) },
    send: (username, message) => app.linkServer.send(username, message),
    broadcast: message => app.linkServer.broadcast(message),
    close: async () => {
      clearInterval(scraping)
      await app.close()
    }
  }
}

async function startKrmx (): Promise<BenchServer> {
  const server = createKrmxServer({ logger: false })
  const port = await server.listen(0)
  return {
    port,
    onMessage: listener => { server.on('message', listener) },
    send: (username, message) => server.send(username, message),
    broadcast: message => server.broadcast(message),
    close: async () => { await server.close() }
  }
}

/**
 * A server on plain `ws` that does what the protocol needs and nothing more: parse the frame, look up the
 * user, dispatch, one JSON.stringify per broadcast. It links without checks beyond the frame's shape and
 * sends the protocol's frames.
 *
 * `coalesce`: the practical limit for Node. Each frame is converted to bytes once, however many sockets it
 * goes to, and the writes to one socket within one turn of the event loop leave in one system call (the
 * socket is corked at its first write of the turn and uncorked at `setImmediate`), as this plugin does.
 */
async function startBare (coalesce: boolean): Promise<BenchServer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise(resolve => wss.once('listening', resolve))
  const sockets = new Map<string, WebSocket>()
  const listeners: Array<(username: string, message: Message) => void> = []
  const corked: Duplex[] = []
  const flush = (): void => {
    for (const transport of corked) transport.uncork()
    corked.length = 0
  }
  const send = coalesce
    ? (socket: WebSocket, data: string | Buffer): void => {
        const transport = (socket as unknown as { _socket: Duplex & { writableCorked: number } })._socket
        if (transport.writableCorked === 0) {
          transport.cork()
          if (corked.push(transport) === 1) setImmediate(flush)
        }
        socket.send(data, textFrame)
      }
    : (socket: WebSocket, data: string | Buffer): void => { socket.send(data) }
  const encode = coalesce ? (message: Message): string | Buffer => Buffer.from(JSON.stringify(message)) : (message: Message): string | Buffer => JSON.stringify(message)
  const sendAll = (data: string | Buffer, except?: WebSocket): void => {
    for (const socket of sockets.values()) {
      if (socket !== except) send(socket, data)
    }
  }
  wss.on('connection', ws => {
    let username: string | undefined
    ws.on('message', data => {
      let message: Message
      try {
        message = JSON.parse(data.toString())
      } catch {
        return
      }
      if (username !== undefined) {
        if (message.type === 'krmx/leave') {
          sockets.delete(username)
          sendAll(encode({ type: 'krmx/unlinked', payload: { username } }))
          sendAll(encode({ type: 'krmx/left', payload: { username } }))
          send(ws, encode({ type: 'krmx/left', payload: { username } }))
          username = undefined
          return
        }
        for (const listener of listeners) listener(username, message)
        return
      }
      if (message.type === 'krmx/link') {
        username = (message.payload as { username: string }).username
        send(ws, encode({ type: 'krmx/accepted' }))
        sendAll(encode({ type: 'krmx/joined', payload: { username } }))
        sockets.set(username, ws)
        for (const user of sockets.keys()) {
          send(ws, encode({ type: 'krmx/joined', payload: { username: user } }))
          send(ws, encode({ type: 'krmx/linked', payload: { username: user } }))
        }
        sendAll(encode({ type: 'krmx/linked', payload: { username } }), ws)
      }
    })
    ws.on('close', () => {
      if (username !== undefined) {
        sockets.delete(username)
      }
    })
  })
  return {
    port: (wss.address() as { port: number }).port,
    onMessage: listener => { listeners.push(listener) },
    send: (username, message) => {
      const socket = sockets.get(username)
      if (socket !== undefined) send(socket, encode(message))
    },
    broadcast: message => sendAll(encode(message)),
    close: async () => {
      for (const ws of wss.clients) ws.terminate()
      await new Promise(resolve => wss.close(resolve))
    }
  }
}
