import type { Static, TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
// The plugin registers @fastify/websocket, so its augmentation of Fastify (`request.ws`, `injectWS`,
// `{ websocket: true }` routes) is part of the plugin's types: importing them here keeps it in the
// published declarations, for applications that do not depend on @fastify/websocket themselves.
import '@fastify/websocket'

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

/** What `getUser()` answers: the user, and the data its last accepted link attached (see `attach`). */
export interface LinkUserInfo<D = unknown> extends LinkUser {
  /** The data an `authenticate` listener attached to the user's last accepted link; absent when none did. */
  data?: D
}

/** The data users carry, typed by `userData` in `LinkServerSchemas` (or `typed()`); `unknown` JSON otherwise. */
export type UserDataOf<S extends LinkSchemas> = S extends { userData: infer D } ? D : unknown

/** What the `link` event says about the link beside the username. */
export interface LinkEventInfo<D = unknown> {
  /** The data the link attached (see `attach` in `authenticate`), or `undefined`. */
  data: D | undefined
  /** With `replay` on: the messages the user missed that were delivered now, and those lost to the bounds. */
  replay: LinkReplay | undefined
}

/** The replay of a link: when `lost` is not 0 the replay is incomplete, and the application may resend its state. */
export interface LinkReplay {
  /** Messages delivered on this link, after the user list, that the user's earlier connections did not confirm. */
  replayed: number
  /** Messages addressed to the user since its last confirmed one that were dropped by `maxMessages` or `maxAgeMilliseconds`. */
  lost: number
}

/** What the `authenticate` listeners know about a link request. */
export interface AuthenticateInfo {
  /** Whether the user would be created by this link (it does not exist yet). */
  isNewUser: boolean
  /** The optional `auth` string of the `krmx/link` frame (a token, for example). */
  auth?: string
  /** The HTTP upgrade request of the connection: headers, query, ip, and your own decorations. */
  request: FastifyRequest
  /** The room the link is for: with rooms off, the endpoint's one room (`name` `''`). */
  room: RoomHandle
  /**
   * Whether the user is linked to another connection now; with `linkConflict: 'takeover'` this link takes
   * it over when accepted (call `reject` to refuse that). Always `false` otherwise: such a link is rejected
   * before authentication.
   */
  isLinked: boolean
}

/**
 * Attaches JSON data to the user when this link is accepted (the claims of its token, its role): `getUser()`
 * returns it on every node and the `link` event receives it. It replaces the data of the user's earlier
 * link; the last call wins. Data that is not JSON, or larger than `maxPayload` as JSON, fails the link.
 */
export type AttachUserData<D = unknown> = (data: D) => void

/** Refuses the link request; the client receives `krmx/rejected` with this reason. The first call wins. */
export type AuthenticateReject = (reason: string) => void

/**
 * Makes the decision wait for `handler`: the link is accepted when every handler resolves without
 * `reject` having been called, and rejected with `authentication failed` if one rejects (with the
 * error's own message only when it is meant for the client: `expose: true` or a 4xx `statusCode`).
 * It may be called until the decision is made, also from a pending handler; later it is ignored.
 */
export type MarkAsync<D = unknown> = (handler: () => Promise<D | void>) => void

/**
 * The events of `fastify.linkServer` and the signatures of their listeners.
 *
 * @example
 * app.linkServer.on('message', (username, message) => {
 *   app.linkServer.broadcast({ type: 'chat/said', payload: { username, message } })
 * })
 */
export interface LinkServerEvents<S extends LinkSchemas = LinkServerSchemas> {
  /** The Fastify server is bound to `port`. */
  listen: (port: number) => void
  /** The link server has closed: every user has left and every socket is closed. */
  close: () => void
  /**
   * A connection asks to link to `username`; call `reject` to refuse it, `markAsync` to decide later, `attach`
   * to give the user data. A listener that returns a promise (an `async` listener) is awaited as if it had
   * called `markAsync`; what it (or a `markAsync` handler) resolves to, when not `undefined`, is attached.
   */
  authenticate: (username: string, info: AuthenticateInfo, reject: AuthenticateReject, markAsync: MarkAsync<UserDataOf<S>>,
    attach: AttachUserData<UserDataOf<S>>) => void | Promise<UserDataOf<S> | void>
  /** A new user exists in `room`. */
  join: (username: string, room: RoomHandle<S>) => void
  /** A connection is now the connection of `username`: the data it attached, and with `replay` on what was replayed. */
  link: (username: string, info: LinkEventInfo<UserDataOf<S>>, room: RoomHandle<S>) => void
  /** `username` no longer has a connection in `room`, but still exists there. */
  unlink: (username: string, room: RoomHandle<S>) => void
  /** `username` no longer exists in `room`. */
  leave: (username: string, room: RoomHandle<S>) => void
  /** The linked user `username` sent an application message that passed its schema (see `messages`). */
  message: (username: string, message: IncomingMessage<S>, room: RoomHandle<S>) => void
  /**
   * The linked user `username` sent an application message that failed its schema, or whose type has no
   * schema while `strictMessages` is on. It was not emitted as `message`; `invalidMessage` says what follows.
   */
  invalidMessage: (username: string, message: LinkMessage, errors: LinkMessageError[], room: RoomHandle<S>) => void
  /** With rooms on: `room` exists, its first user joined (before that user's `join`). */
  roomStart: (room: RoomHandle<S>) => void
  /** With rooms on: `room` ended, its last user left (after that user's `leave`). */
  roomEnd: (room: RoomHandle<S>) => void
}

/** The name of an event of the link server. */
export type LinkServerEventName = keyof LinkServerEvents

/** Why an application message was refused: where in the message, and what is wrong there. */
export interface LinkMessageError {
  /** A JSON pointer into the message, such as `/payload/text`, or `/type` for a type that has no schema. */
  path: string
  /** What is wrong, in words. */
  message: string
}

/**
 * TypeBox schemas of application message payloads, by message type. A type without a payload is
 * `Type.Undefined()`: its frames carry no `payload` field.
 *
 * @example
 * const messages = {
 *   'chat/say': Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }),
 *   'chat/typing': Type.Undefined()
 * } satisfies MessageSchemas
 */
export type MessageSchemas = Record<string, TSchema>

/** The part of the plugin options the message types are inferred from. */
export interface LinkSchemas {
  messages?: MessageSchemas
  serverMessages?: MessageSchemas
  strictMessages?: boolean
  /** Type only: the type of the data users carry (see `attach`). */
  userData?: unknown
}

/**
 * Augment this interface with the types of your schemas to type `fastify.linkServer` everywhere,
 * the way `@fastify/jwt` lets you type `request.user`.
 *
 * @example
 * declare module 'fastify-link-server' {
 *   interface LinkServerSchemas {
 *     messages: typeof messages
 *     serverMessages: typeof serverMessages
 *     strictMessages: true
 *   }
 * }
 */
export interface LinkServerSchemas {}

/** The message of type `K` whose payload has the TypeScript type `P`. */
export type TypedMessage<K extends string, P> = undefined extends P
  ? { type: K, payload?: P }
  : { type: K, payload: P }

/** The discriminated union of the messages of `M`, one member per type. */
export type MessageUnion<M extends MessageSchemas> = {
  [K in keyof M & string]: TypedMessage<K, Static<M[K]>>
}[keyof M & string]

/** What a `message` listener receives: the registered types, and untyped ones unless `strictMessages` is `true`. */
export type IncomingMessage<S extends LinkSchemas> = S extends { messages: infer M extends MessageSchemas }
  ? MessageUnion<M> | (S extends { strictMessages: true } ? never : LinkMessage)
  : LinkMessage

/** What `send` and `broadcast` accept: the registered server types when `serverMessages` is given. */
export type OutgoingMessage<S extends LinkSchemas> = S extends { serverMessages: infer M extends MessageSchemas }
  ? MessageUnion<M>
  : LinkMessage

/** The message types `handle` accepts. */
export type HandledType<S extends LinkSchemas> = S extends { messages: infer M extends MessageSchemas }
  ? (keyof M & string) | (S extends { strictMessages: true } ? never : string & {})
  : string

/** The payload a handler of `type` receives. */
export type HandledPayload<S extends LinkSchemas, K extends string> = S extends { messages: infer M extends MessageSchemas }
  ? K extends keyof M ? Static<M[K]> : unknown
  : unknown

/** A handler of one message type; see `linkServer.handle`. `room` is the sender's room. */
export type MessageHandler<P = unknown, S extends LinkSchemas = LinkServerSchemas> = (username: string, payload: P, room: RoomHandle<S>) => void | Promise<void>

/** Options of the fastify-link-server plugin. */
export interface LinkServerOptions {
  /** The WebSocket route, under the encapsulating prefix. Default `'/'`. */
  path?: string
  /** Whether a link may create a new user. When `false`, only users added with `linkServer.join()` may link. Default `true`. */
  acceptNewUsers?: boolean
  /** How long an asynchronous authentication may take before the link is rejected. Default `10_000`; values below 1 become 1; at most 2^31 - 1. */
  authTimeoutMilliseconds?: number
  /** Decides which usernames are allowed. Default: the Krmx rule (`usernameRegex`). */
  isValidUsername?: (username: string) => boolean
  /** How often each connection is pinged; one that missed the previous ping is terminated. Default `15_000`; `0` turns it off; 1–99 become 100; at most 2^31 - 1. */
  pingIntervalMilliseconds?: number
  /** The Krmx client versions accepted, as `major.minor.x` or exact `major.minor.patch`. Default `['0.5.x', '0.6.x']`. */
  acceptedVersions?: string[]
  /** TypeBox schemas of the payloads of the messages clients send, by type; checked before `message` is emitted. */
  messages?: MessageSchemas
  /** TypeBox schemas of the payloads of the messages the server sends; `send` and `broadcast` check them and accept no other type. */
  serverMessages?: MessageSchemas
  /** Whether a client message whose type has no schema in `messages` is invalid. Default `false`: it passes through untyped. */
  strictMessages?: boolean
  /** What happens to an invalid client message: `'drop'` it (default) or `'unlink'` its user. Either way `invalidMessage` is emitted. */
  invalidMessage?: 'drop' | 'unlink'
  /** Serves the AsyncAPI 3.0 document of the endpoint (see `linkServer.asyncapi()`) at `path`, and sets its `info`. */
  asyncapi?: AsyncApiOptions
  /** The largest incoming frame, in bytes; a larger one closes its connection with 1009. Default 64 KiB. */
  maxPayload?: number
  /** A connection that is not linked this long after it opened or unlinked is closed with 1008. Default `30_000`; `0` turns it off; at most 2^31 - 1. */
  linkTimeoutMilliseconds?: number
  /** A connection whose link requests are rejected this many times in a row is closed with 1008. Default `10`; `0` turns it off. */
  maxLinkAttempts?: number
  /** The budget of incoming frames of each connection, a token bucket; `false` turns it off. Default `{ rate: 100, burst: 200 }`. */
  rateLimit?: RateLimitOptions | false
  /** The most users at once; a link that would create one more is rejected with `server is full`. Default `10_000`. */
  maxUsers?: number
  /** The most WebSocket connections at once; an upgrade beyond it is refused with HTTP 503. Default `10_000`. */
  maxConnections?: number
  /**
   * With rooms on (a `:room` parameter in `path`): which room names exist. An upgrade to another name is refused with
   * HTTP 404, before any WebSocket opens. Default: 1 to 64 letters, digits, `.`, `_` and `-` (`roomRegex`).
   */
  isValidRoom?: (room: string) => boolean
  /** With rooms on: the most rooms at once (in a cluster, of the whole cluster); a link that would create one more is rejected with `server is full`. Default `10_000`. */
  maxRooms?: number
  /** With rooms on: whether a link may create a room. When `false`, only rooms made with `room(name).join()` may be linked to. Default `true`. */
  acceptNewRooms?: boolean
  /**
   * The origins that may open a WebSocket, as exact `Origin` values or a predicate; any other upgrade is refused
   * with HTTP 403. An upgrade without an `Origin` header (not from a browser) is allowed by a list. Default: any.
   */
  allowedOrigins?: string[] | ((origin: string | undefined, request: FastifyRequest) => boolean)
  /** A connection whose outgoing buffer holds more than this many bytes after a write is terminated. Default 4 MiB. */
  maxBufferedBytes?: number
  /**
   * The deepest nesting of objects and arrays in an incoming frame, the frame itself being level 1. A deeper
   * application message is invalid (see `invalidMessage`) before any schema runs on it. Default `64`.
   */
  maxDepth?: number
  /** The most frames a connection may send while its link request is being decided; beyond it it is closed with 1008. Default `32`. */
  maxQueuedFrames?: number
  /** The most bytes a connection may send while its link request is being decided; beyond it it is closed with 1008. Default 128 KiB. */
  maxQueuedBytes?: number
  /**
   * Shares one user space between every instance that names the same Redis and `namespace` (see the
   * README's "Scaling out"). Absent: the user space is this process's own.
   */
  cluster?: ClusterOptions
  /**
   * How long an unlinked user is kept for its client to link again; a user not linked again within it leaves
   * by itself, once, cluster-wide. Default `0`: kept until it leaves. See the README's "Sessions".
   */
  reconnectWindowMilliseconds?: number
  /** Keeps the messages a user did not confirm and delivers them when it links again. Default: off. */
  replay?: ReplayOptions
  /**
   * A link to a user that is linked: `'reject'`ed (default), or `'takeover'`: when authenticated, it replaces
   * the old connection, which is told `krmx/unlinked` and closed with 4001 `linked from another connection`.
   */
  linkConflict?: 'reject' | 'takeover'
  /**
   * Prometheus metrics (`link_server_*`, see the README's "Operating it") through `prom-client`, an optional peer
   * dependency (`npm install prom-client`). `true`: on a registry of the plugin's own, served at `/metrics`.
   * Default: off.
   */
  metrics?: boolean | MetricsOptions
  /**
   * Health endpoints: `GET <path>/live` answers 200 while the process serves; `GET <path>/ready` answers 200
   * while the link server accepts links (and, in cluster mode, Redis answers), else 503 with the reason.
   * `true`: under `/health`. Default: off.
   */
  health?: boolean | HealthOptions
  /** How long a socket that is closed (the server closing, a broken rule, a takeover) may take to answer the close frame before it is terminated. Default `1_000`. */
  closeGraceMilliseconds?: number
}

/** The `metrics` option. */
export interface MetricsOptions {
  /**
   * Where the registry is served, under the encapsulating prefix; `false`: not served (scrape your own
   * registry). Default `'/metrics'`, or `false` when `registry` is given.
   */
  path?: string | false
  /** A prom-client `Registry` of the application's to register the metrics on. Default: a registry of the plugin's own. */
  registry?: MetricsRegistry
}

/** A prom-client `Registry`, described by what the plugin uses of it, so that these types do not need `prom-client` installed. */
export interface MetricsRegistry {
  registerMetric: (metric: any) => void
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
  metrics: () => Promise<string>
  readonly contentType: string
}

/** The `health` option. */
export interface HealthOptions {
  /** The prefix of the two endpoints, under the encapsulating prefix. Default `'/health'`: `/health/live` and `/health/ready`. */
  path?: string
}

/** The `replay` option. */
export interface ReplayOptions {
  /** The most messages kept for a user; older ones are dropped and counted as lost. Default `100`. */
  maxMessages?: number
  /** How long a message is kept for a user. Default: `reconnectWindowMilliseconds`, or `60_000` when that is 0. */
  maxAgeMilliseconds?: number
}

/**
 * An `ioredis` client (`Redis` or `Cluster`) that the application owns, described by what the plugin
 * uses of it, so that these types do not need `ioredis` installed.
 */
export interface ClusterRedisClient {
  duplicate: (...args: any[]) => unknown
  readonly status: string
}

/** The `cluster` option. */
export interface ClusterOptions {
  /**
   * A `redis://` (or `rediss://`) URL, or an `ioredis` client the application owns: the plugin duplicates it
   * for its own connections and never closes it.
   */
  redis: string | ClusterRedisClient
  /** The prefix of every key and channel, so that several apps share one Redis. Default `'fastify-link-server'`. */
  namespace?: string
  /** This instance's id in the cluster. Default: random. */
  nodeId?: string
  /** How long a silent instance is trusted before its users are unlinked. Default `10_000`. */
  nodeTimeoutMilliseconds?: number
}

/** The `rateLimit` option: `rate` frames per second, up to `burst` at once. */
export interface RateLimitOptions {
  /** Frames per second a connection may send on average. */
  rate: number
  /** Frames a connection may send at once, after a quiet time. */
  burst: number
}

/** The `asyncapi` option. */
export interface AsyncApiOptions {
  /** The route that serves the document as JSON, under the encapsulating prefix. Default: no route. */
  path?: string
  /** The document's `info` object. Default title `'fastify-link-server'`, version `'0.0.0'`. */
  info?: { title?: string, version?: string, description?: string }
}

/** An AsyncAPI 3.0 document, as a plain JSON object. */
export interface AsyncApiDocument {
  asyncapi: '3.0.0'
  info: { title: string, version: string, description?: string }
  defaultContentType: 'application/json'
  channels: Record<string, unknown>
  operations: Record<string, unknown>
  components: Record<string, unknown>
}

/** Counters of the link server, as `getStats()` reports them. */
export interface LinkServerStats {
  /** Open WebSocket connections of the route, linked or not. */
  connections: number
  /** Users, linked or not (in a cluster, of the whole cluster); with rooms on, of every room this instance serves. */
  users: number
  /** Rooms that exist, of those this instance serves (1 with rooms off). */
  rooms: number
  /** Users with a connection to this instance (in a cluster, the users linked to other nodes are not counted). */
  linkedUsers: number
  /** Client messages refused by their schema (or by `strictMessages`) since the server started. */
  invalidMessages: number
}

/**
 * One room: a user space of its own, with the user API scoped to it. Every event about a user space passes the
 * handle of its room last; `linkServer.room(name)` returns one. With rooms off, the endpoint is one room (named
 * `''`), and these are also the methods of `linkServer` itself.
 */
export interface RoomHandle<S extends LinkSchemas = LinkServerSchemas> {
  /** The room's name, as in its URL; `''` with rooms off. */
  readonly name: string
  /**
   * Sends `message` to the linked user `username` of the room, on whichever node of the cluster it is linked to.
   * With `replay` on, a user that exists but is unlinked keeps it for its next link.
   */
  send(username: string, message: OutgoingMessage<S>): void
  /** Sends `message` to every linked user of the room (of every node), except `skipUsername` when given. */
  broadcast(message: OutgoingMessage<S>, skipUsername?: string): void
  /**
   * Creates the user `username` in the room without a connection, so that it can link even when `acceptNewUsers`
   * is false; with rooms on, creates the room too if it does not exist (see `maxRooms`).
   *
   * A misuse this node can see (an invalid name, a user that exists, a full server) throws a coded error.
   * The promise resolves when the join is committed and applied here: at once without a cluster. In a
   * cluster it rejects with the coded error of a conflict only Redis could see (another node made the
   * user first) or with `FST_LINK_CLUSTER_UNAVAILABLE`; a rejection nobody awaits is logged, never unhandled.
   */
  join(username: string): Promise<void>
  /**
   * Unlinks the user `username` of the room from its connection, on any node; the user stays and the connection
   * stays open. Throws and settles as `join` does.
   */
  unlink(username: string): Promise<void>
  /**
   * Makes the user `username` leave the room (unlinked first if linked), wherever it is linked. Its connection, if
   * it had one, is told `krmx/unlinked` and `krmx/left` and stays open, unlinked: it may link again, as after a
   * leave. Throws and settles as `join` does.
   */
  kick(username: string): Promise<void>
  /**
   * Every user of the room, in join order (`[]` for a room that does not exist). In a cluster, a room this instance
   * does not serve (no connection in it here, its API unused lately) is not loaded: the reads throw
   * `FST_LINK_ROOM_NOT_LOADED` until `await load()`.
   */
  getUsers(): LinkUser[]
  /** The user `username` of the room with the data its link attached, or `undefined` when it is not in the room. */
  getUser(username: string): LinkUserInfo<UserDataOf<S>> | undefined
  /** Whether the user `username` is in the room and has a connection. */
  isLinked(username: string): boolean
  /**
   * Resolves when this instance serves the room with its users loaded, so that the reads answer: at once without a
   * cluster. In a cluster the room is then served while the API uses it, and a while after (twice `nodeTimeoutMilliseconds`).
   */
  load(): Promise<void>
}

/**
 * `fastify.linkServer`: a typed event emitter and the user API. `S` carries the types of the message
 * schemas; see `LinkServerSchemas` and `typed()`. The user API (`send`, `broadcast`, `join`, `unlink`, `kick`,
 * `getUsers`, `getUser`, `isLinked`) is that of a room (`RoomHandle`): with rooms off, of the endpoint's one
 * room; with rooms on (a `:room` parameter in `path`) it is per room (`room(name)`), and these methods of
 * `linkServer` itself throw `FST_LINK_ROOM_REQUIRED`.
 */
export interface LinkServer<S extends LinkSchemas = LinkServerSchemas> extends Omit<RoomHandle<S>, 'name' | 'load'> {
  /** Adds a listener. A listener that throws is logged and never stops the other listeners. */
  on<E extends LinkServerEventName>(event: E, listener: LinkServerEvents<S>[E]): this
  /** Adds a listener that is removed after its first call. */
  once<E extends LinkServerEventName>(event: E, listener: LinkServerEvents<S>[E]): this
  /** Removes a listener added with `on` or `once`. */
  off<E extends LinkServerEventName>(event: E, listener: LinkServerEvents<S>[E]): this
  /** How many listeners `event` has. */
  listenerCount(event: LinkServerEventName): number
  /**
   * Handles the valid messages of one type, like a route: `handler` receives the sender and the payload,
   * typed by the schema of `type`. Several handlers of a type run in the order they were added, after the
   * `message` listeners; one that throws is logged and never stops the others.
   */
  handle<K extends HandledType<S>>(type: K, handler: MessageHandler<HandledPayload<S, K>, S>): this
  /** The same link server, typed by the schemas of `T` (the type of your plugin options, for example). */
  typed<T extends LinkSchemas>(): LinkServer<T>
  /**
   * A handle on the room `name`, with the user API of that room: with rooms on (a `:room` parameter in `path`), any
   * name `isValidRoom` takes (a room that does not exist yet is empty: `join` on it creates it); with rooms off, only
   * `''`, the endpoint's one room. Throws `FST_LINK_INVALID_ROOM` or `FST_LINK_ROOMS_OFF`.
   */
  room(name: string): RoomHandle<S>
  /** The names of the rooms that exist (in a cluster, in the whole cluster), sorted; `['']` with rooms off. */
  getRooms(): Promise<string[]>
  /** The lifecycle state of the link server. */
  getStatus(): LinkServerStatus
  /** Counters of connections, users and refused messages. */
  getStats(): LinkServerStats
  /** The AsyncAPI 3.0 document of the endpoint: the protocol frames and every registered message type. */
  asyncapi(): AsyncApiDocument
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The link server of fastify-link-server. */
    linkServer: LinkServer
  }
}
