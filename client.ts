/**
 * `fastify-link-server/client`: a client of the link server for browsers and Node (give it `ws`'s WebSocket in Node 20),
 * typed by the server's options, reconnecting by itself. See docs/client.md.
 */
export {
  createLinkClient,
  LinkClient,
  type LinkClientOptions,
  type LinkClientSnapshot,
  type LinkClientStatus,
  type LinkOptions,
  type LinkSession,
  LinkRefusedError,
  type SocketConstructor,
  type SocketLike
} from './lib/client/link-client.js'
export { backoffDelay, type ReconnectOptions } from './lib/client/backoff.js'
export { type MessageValidator, validateMessages } from './lib/client/validate.js'
