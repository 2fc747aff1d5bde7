import type { FastifyRequest } from 'fastify'

/** The lifecycle of a link server, as `getStatus()` reports it. */
export type LinkServerStatus = 'initializing' | 'listening' | 'closing' | 'closed'

/**
 * An application message: any JSON object with a string `type` whose prefix is not `krmx/`.
 *
 * @example
 * const message: LinkMessage = { type: 'chat/say', payload: { text: 'hello' } }
 */
export interface LinkMessage {
  type: string
  payload?: unknown
}

/** One entry of `getUsers()`. */
export interface LinkUser {
  username: string
  isLinked: boolean
}

/** What the `authenticate` listeners know about a link request. */
export interface AuthenticateInfo {
  /** Whether the user would be created by this link (it does not exist yet). */
  isNewUser: boolean
  /** The optional `auth` string of the `krmx/link` frame (a token, for example). */
  auth?: string
  /** The HTTP upgrade request of the connection: headers, query, ip, and your own decorations. */
  request: FastifyRequest
}

/** Refuses the link request; the client receives `krmx/rejected` with this reason. The first call wins. */
export type AuthenticateReject = (reason: string) => void

/**
 * Makes the decision wait for `handler`: the link is accepted when every handler resolves without
 * `reject` having been called, and rejected with the error's message if one rejects.
 */
export type MarkAsync = (handler: () => Promise<void>) => void

/**
 * The events of `fastify.linkServer` and the signatures of their listeners.
 *
 * @example
 * app.linkServer.on('message', (username, message) => {
 *   app.linkServer.broadcast({ type: 'chat/said', payload: { username, message } })
 * })
 */
export interface LinkServerEvents {
  /** The Fastify server is bound to `port`. */
  listen: (port: number) => void
  /** The link server has closed: every user has left and every socket is closed. */
  close: () => void
  /** A connection asks to link to `username`; call `reject` to refuse it, `markAsync` to decide later. */
  authenticate: (username: string, info: AuthenticateInfo, reject: AuthenticateReject, markAsync: MarkAsync) => void
  /** A new user exists. */
  join: (username: string) => void
  /** A connection is now the connection of `username`. */
  link: (username: string) => void
  /** `username` no longer has a connection, but still exists. */
  unlink: (username: string) => void
  /** `username` no longer exists. */
  leave: (username: string) => void
  /** The linked user `username` sent an application message. */
  message: (username: string, message: LinkMessage) => void
}

/** The name of an event of the link server. */
export type LinkServerEventName = keyof LinkServerEvents

/** Options of the fastify-link-server plugin. */
export interface LinkServerOptions {
  /** The WebSocket route, under the encapsulating prefix. Default `'/'`. */
  path?: string
  /** Whether a link may create a new user. When `false`, only users added with `linkServer.join()` may link. Default `true`. */
  acceptNewUsers?: boolean
  /** How long an asynchronous authentication may take before the link is rejected. Default `10_000`; values below 1 become 1. */
  authTimeoutMilliseconds?: number
  /** Decides which usernames are allowed. Default: the Krmx rule (`usernameRegex`). */
  isValidUsername?: (username: string) => boolean
  /** How often each connection is pinged; one that missed the previous ping is terminated. Default `15_000`; `0` turns it off; 1–99 become 100. */
  pingIntervalMilliseconds?: number
  /** The Krmx client versions accepted, as `major.minor.x` or exact `major.minor.patch`. Default `['0.5.x', '0.6.x']`. */
  acceptedVersions?: string[]
}

/** `fastify.linkServer`: a typed event emitter and the user API. */
export interface LinkServer {
  /** Adds a listener. A listener that throws is logged and never stops the other listeners. */
  on<E extends LinkServerEventName>(event: E, listener: LinkServerEvents[E]): this
  /** Adds a listener that is removed after its first call. */
  once<E extends LinkServerEventName>(event: E, listener: LinkServerEvents[E]): this
  /** Removes a listener added with `on` or `once`. */
  off<E extends LinkServerEventName>(event: E, listener: LinkServerEvents[E]): this
  /** How many listeners `event` has. */
  listenerCount(event: LinkServerEventName): number
  /** Sends `message` to the linked user `username`. */
  send(username: string, message: LinkMessage): void
  /** Sends `message` to every linked user, except `skipUsername` when given. */
  broadcast(message: LinkMessage, skipUsername?: string): void
  /** Creates the user `username` without a connection, so that it can link even when `acceptNewUsers` is false. */
  join(username: string): void
  /** Unlinks the user `username` from its connection; the user stays and the connection stays open. */
  unlink(username: string): void
  /** Makes the user `username` leave the server. */
  kick(username: string): void
  /** Every user, in join order. */
  getUsers(): LinkUser[]
  /** The lifecycle state of the link server. */
  getStatus(): LinkServerStatus
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The link server of fastify-link-server. */
    linkServer: LinkServer
  }
}
