import type { LinkMessage, LinkMessageError, LinkSchemas, OutgoingMessage } from '../../types/index.js'
import type { ReconnectOptions } from './backoff.js'
import type { LinkClientStatus } from './state.js'
import type { MessageValidator } from './validate.js'

// The types of the client's API: the WebSocket it takes, its options, its events, its errors.

/** What the client needs of a WebSocket: the browser's, or `ws`'s in Node (which has none before Node 22). */
export interface SocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}
/**
 * A WebSocket class: the browser's `WebSocket` and `ws`'s fit as they are (their event handlers take events of their
 * own types, which the client sets and reads as `SocketLike`'s).
 */
export type SocketConstructor = new (url: string) => Pick<SocketLike, 'readyState' | 'send' | 'close'>

export interface LinkClientOptions {
  /** The WebSocket class; by default the global one (browsers, Node 22+). Give `ws`'s in Node 20. */
  WebSocket?: SocketConstructor
  /** How to come back after a dropped connection; `false`: never. */
  reconnect?: ReconnectOptions | false
  /**
   * How many times in a row a reconnection refused with `already linked` is tried again (the old connection may be a
   * half-open one the server has not noticed yet, or be on an instance that died). Default 15.
   */
  alreadyLinkedRetries?: number
  /** The Krmx version sent in the link request. Default `0.6.0`. */
  version?: string
  /** The random numbers of the jitter, `Math.random` by default (a test gives its own). */
  random?: () => number
  /**
   * Checks each application message the server sends (see `validateMessages`): one with errors is not handed to the
   * `message` listeners, but to the `invalidMessage` ones, with its errors.
   */
  validate?: MessageValidator
  /**
   * How often, while linked to a server that speaks the session extension, the client checks that the connection
   * still carries: when nothing arrived for this long it sends `krmx/ping`, and when nothing arrived for as long
   * again, it takes the connection as dead and reconnects (a half-open TCP connection is found in 2 to 3 intervals).
   * Default 5,000; `false`: never.
   */
  heartbeatMilliseconds?: number | false
  /**
   * Where an earlier client of the same user was (its `getSession()`, kept with what the app kept, in sessionStorage
   * say): the messages go on after the last one it had, so that a page reload sees none twice.
   */
  session?: LinkSession
}

/** Where a client is in its user's messages: the user (its join order) and, with replay on, the last message's number. */
export interface LinkSession {
  readonly user: number
  readonly last: number | undefined
}

export interface LinkOptions {
  /** Sent with each link request: a string, or a function called before every link (a reconnect gets a fresh token). */
  auth?: string | (() => string | Promise<string>)
}

/** A link refused by the server, with its reason. */
export class LinkRefusedError extends Error {
  readonly code = 'FST_LINK_CLIENT_REFUSED'
  readonly reason: string
  constructor (reason: string) {
    super(`the server refused the link: ${reason}`)
    this.reason = reason
  }
}

/** The events of a client, and their listeners. */
export type ClientEvents<S extends LinkSchemas> = {
  message: (message: OutgoingMessage<S>) => void
  join: (username: string) => void
  link: (username: string) => void
  unlink: (username: string) => void
  leave: (username: string) => void
  status: (status: LinkClientStatus) => void
  invalidMessage: (message: LinkMessage, errors: readonly LinkMessageError[]) => void
  /** After a reconnection: how many messages the server could no longer replay (its bounds dropped them); resync. */
  lost: (count: number) => void
}
