import type { LinkMessageError, MessageHandler } from '../../types/index.js'
import type { InvalidMessageReason } from '../counts.js'
import { FST_LINK_INVALID_HANDLER, FST_LINK_RESERVED_TYPE, FST_LINK_UNKNOWN_MESSAGE_TYPE } from '../errors.js'
import { type Frame, isProtocolType, kTooDeep, leaveType, linkType, pingType, pongFrame, unlinkType } from '../frames.js'
import { leaveConnection, unlinkConnection } from '../link/unlink.js'
import type { Handler } from '../events.js'
import type { Parts } from '../parts.js'
import type { Connection } from '../transport/connection.js'
import { payloadErrors, tooDeepError, unregisteredTypeError } from './schemas.js'

/** A parsed frame, marked when it is nested deeper than `maxDepth`. */
type DeepFrame = Frame & { [kTooDeep]?: true }

/**
 * The frames of a linked connection: the protocol's (unlink, leave) and the application's messages, checked
 * against their schemas, then emitted and handed to the handlers of their type.
 */
export class MessageRouter {
  readonly #parts: Parts
  /** The handlers added with `handle`, by message type. */
  readonly #handlers = new Map<string, Handler[]>()

  constructor (parts: Parts) {
    this.#parts = parts
  }

  /** Adds a handler of a message type (`linkServer.handle`); throws the coded error of a misuse. */
  add (type: string, handler: MessageHandler<never, never>): void {
    if (typeof type !== 'string') {
      throw new FST_LINK_INVALID_HANDLER(String(type), 'the type must be a string')
    }
    if (typeof handler !== 'function') {
      throw new FST_LINK_INVALID_HANDLER(type, 'the handler must be a function')
    }
    if (isProtocolType(type)) {
      throw new FST_LINK_RESERVED_TYPE('handle', type)
    }
    const options = this.#parts.options
    if (options.strictMessages && options.messages?.has(type) !== true) {
      throw new FST_LINK_UNKNOWN_MESSAGE_TYPE('handle', type, 'messages')
    }
    const handlers = this.#handlers.get(type)
    if (handlers === undefined) {
      this.#handlers.set(type, [handler as Handler])
    } else {
      handlers.push(handler as Handler)
    }
  }

  clear (): void {
    this.#handlers.clear()
  }

  /** A frame of `connection`, linked to `username`. */
  route (connection: Connection, username: string, frame: Frame | undefined): void {
    if (frame === undefined) {
      connection.log.warn({ username }, 'user sent a malformed frame and is unlinked')
      unlinkConnection(connection, 'client')
      return
    }
    switch (frame.type) {
      case linkType:
      case unlinkType:
        unlinkConnection(connection, 'client')
        return
      case leaveType:
        leaveConnection(connection)
        return
      case pingType:
        if (connection.link?.session === true) {
          connection.send(pongFrame) // the session extension's liveness check; without it, krmx/ping is unknown
          return
        }
    }
    if (isProtocolType(frame.type)) {
      connection.log.warn({ username, type: frame.type }, 'user sent an unknown frame type with the reserved krmx/ prefix and is unlinked')
      unlinkConnection(connection, 'client')
      return
    }
    const options = this.#parts.options
    if ((frame as DeepFrame)[kTooDeep] === true) {
      this.#refuse(connection, username, frame, [tooDeepError(options.maxDepth)], 'too_deep')
      return
    }
    const check = options.messages?.get(frame.type)
    if (check === undefined) {
      if (options.strictMessages) {
        this.#refuse(connection, username, frame, [unregisteredTypeError], 'unregistered_type')
        return
      }
    } else {
      const errors = payloadErrors(check, frame.payload)
      if (errors !== undefined) {
        this.#refuse(connection, username, frame, errors, 'invalid_payload')
        return
      }
    }
    const events = this.#parts.events
    const room = connection.room.handle
    events.emitMessage(username, frame, room)
    const handlers = this.#handlers.get(frame.type)
    if (handlers !== undefined) {
      for (const handler of handlers) {
        events.callHandler(handler, username, frame, room)
      }
    }
  }

  /** An application message failed its schema: it is dropped, or its user unlinked, as `invalidMessage` says. */
  #refuse (connection: Connection, username: string, frame: Frame, errors: LinkMessageError[], reason: InvalidMessageReason): void {
    const options = this.#parts.options
    this.#parts.counts.invalidMessage(options.messages?.has(frame.type) === true ? frame.type : 'other', reason)
    const unlink = options.invalidMessage === 'unlink'
    connection.log.warn({ username, type: frame.type, error: errors[0] },
      unlink ? 'user sent an invalid message and is unlinked' : 'user sent an invalid message; it is dropped')
    this.#parts.events.emit('invalidMessage', [username, frame, errors, connection.room.handle])
    if (unlink && connection.link?.username === username) {
      unlinkConnection(connection, 'invalid_message') // unless an invalidMessage listener unlinked or kicked the user already
    }
  }
}
