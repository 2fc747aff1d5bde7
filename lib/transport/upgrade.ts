import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'

/**
 * What the upgrade request of a connection keeps of its `IncomingMessage` for the socket's life: what Fastify's
 * request reads from it (headers, url, method, the socket behind `ip`, `protocol` and `trustProxy`), and
 * nothing of the HTTP parser's state. `on` is the socket's, so that `request.signal` aborts when the
 * connection closes.
 */
class UpgradedMessage {
  readonly headers: IncomingMessage['headers']
  readonly url: string | undefined
  readonly method: string | undefined
  readonly httpVersion: string
  readonly httpVersionMajor: number
  readonly httpVersionMinor: number
  readonly socket: Socket
  constructor (raw: IncomingMessage) {
    this.headers = raw.headers
    this.url = raw.url
    this.method = raw.method
    this.httpVersion = raw.httpVersion
    this.httpVersionMajor = raw.httpVersionMajor
    this.httpVersionMinor = raw.httpVersionMinor
    this.socket = raw.socket
  }

  /** Fastify's `request.signal` listens for the request's `close`: the connection's. */
  on (event: string, listener: (...args: unknown[]) => void): this {
    this.socket.on(event, listener)
    return this
  }
}

/**
 * `app.injectWS` of `@fastify/websocket` (11.3.7 and before) sends `sec-websocket-version` as the number 13,
 * which `ws` refuses with HTTP 400 from 8.23.1 on: a header of a real request is always a string. So that
 * injected connections open with every `ws` a fresh install resolves, whichever side is fixed first, the
 * number is made the string it stands for before `ws` reads it.
 */
export function acceptInjectedVersion (headers: IncomingMessage['headers']): void {
  const version: unknown = headers['sec-websocket-version']
  if (typeof version === 'number') {
    headers['sec-websocket-version'] = String(version)
  }
}

/**
 * Lets go of the HTTP machinery of an upgrade that `@fastify/websocket` keeps for the socket's life: the
 * `ServerResponse` it assigned to the socket (and Fastify's `Reply` with it), its socket error listener (a
 * closure over the request and the reply: the link server listens to the socket's errors itself), and the
 * `IncomingMessage` behind the request, which keeps only what `UpgradedMessage` says. The request itself, with
 * whatever hooks decorated it with, stays: `authenticate` gets it on every link. The memory scenario of
 * `npm run bench` and `npm run bench:heap` measure what this saves (docs/benchmarks.md#memory).
 */
export function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
  socket.removeAllListeners('error')
  const transport = (socket as unknown as { _socket: Socket & { _httpMessage?: { detachSocket: (socket: Socket) => void } | null } })._socket
  transport._httpMessage?.detachSocket(transport)
  // `raw`, and Fastify's own reference to it (the request's payload stream, a symbol property).
  const raw = request.raw
  const upgraded = new UpgradedMessage(raw)
  const fields = request as unknown as Record<string | symbol, unknown>
  for (const key of [...Object.keys(request), ...Object.getOwnPropertySymbols(request)]) {
    if (fields[key] === raw) {
      fields[key] = upgraded
    }
  }
}
