import type { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import type { LinkEventInfo, LinkSchemas, MessageHandler, RoomHandle } from '../types/index.js'
import type { Frame } from './frames.js'
import { isThenable } from './thenable.js'

type Listener = (...args: unknown[]) => unknown
/** A room's handle, as the modules pass it (the application's schemas type it for the application). */
type Room = RoomHandle<LinkSchemas>
/** A handler of a message type, as the router keeps it. */
export type Handler = MessageHandler<unknown, LinkSchemas>

/** The events of state changes, which are emitted in the order of the changes, after each change is complete. */
export type ChangeEvent = 'join' | 'link' | 'unlink' | 'leave' | 'roomStart' | 'roomEnd'

/**
 * The events of the link server: every listener is called even when one throws or rejects (it is logged, and
 * never stops the others nor the protocol flow that emitted the event); the events of changes wait in a queue
 * until their change is complete.
 */
export class Events {
  readonly #emitter: EventEmitter
  readonly #log: FastifyBaseLogger
  /**
   * The events of the changes made but not emitted yet, as event, username, info and room quadruples. A change is
   * applied whole (its state and every frame it sends) before any listener hears of it, so that a listener
   * acting on the link server never cuts into a change, and every connection sees a consistent history; the
   * events of a change a listener makes are emitted after those already due.
   */
  #changes: Array<ChangeEvent | string | LinkEventInfo | Room | undefined> = []
  #changesEmitted = 0
  #emittingChanges = false

  constructor (emitter: EventEmitter, log: FastifyBaseLogger) {
    this.#emitter = emitter
    this.#log = log
  }

  /** Calls every listener of `event`, in order. */
  emit (event: string | symbol, args: unknown[]): boolean {
    // EventEmitter keeps one listener as a function and several as an array; reading it directly spares
    // the copy rawListeners() makes on every frame. Several are copied, as EventEmitter does, so that a
    // listener that removes itself does not skip the next one.
    const handler = this.#listenersOf(event)
    if (handler === undefined) {
      return false
    }
    if (typeof handler === 'function') {
      this.#call(handler, event, args)
    } else {
      for (const listener of [...handler]) {
        this.#call(listener, event, args)
      }
    }
    return true
  }

  /** The listeners of `event`, as they were added (`once` wrappers included). */
  listeners (event: string): Listener[] {
    return this.#emitter.rawListeners(event) as Listener[]
  }

  /** `emit('message', ...)` for the hot path: with one listener, no arguments array is made. */
  emitMessage (username: string, frame: Frame, room: Room): void {
    const handler = this.#listenersOf('message')
    if (typeof handler === 'function') {
      try {
        this.#watch(handler.call(this.#emitter, username, frame, room), 'message', undefined)
      } catch (err) {
        this.#logError(err, 'message')
      }
    } else if (handler !== undefined) {
      this.emit('message', [username, frame, room])
    }
  }

  /** Calls a handler of a message type, like a listener. */
  callHandler (handler: Handler, username: string, frame: Frame, room: Room): void {
    try {
      this.#watch(handler(username, frame.payload, room), 'message', frame.type)
    } catch (err) {
      this.#logError(err, 'message', frame.type)
    }
  }

  /**
   * Records that `event` happened to `username` (`''` for an event of the room itself) in `room`; it is emitted by
   * `flush`, after the change is complete.
   */
  changed (event: ChangeEvent, username: string, info: LinkEventInfo | undefined, room: Room): void {
    this.#changes.push(event, username, info, room)
  }

  /**
   * Emits the events of the changes made so far, in order. Every operation that changes state calls it when its
   * change is complete; a listener that changes state adds events to the same queue, which the outermost call
   * emits after the events before them.
   */
  flush (): void {
    if (this.#emittingChanges) {
      return
    }
    this.#emittingChanges = true
    while (this.#changesEmitted < this.#changes.length) {
      const event = this.#changes[this.#changesEmitted++] as ChangeEvent
      const username = this.#changes[this.#changesEmitted++] as string
      const info = this.#changes[this.#changesEmitted++]
      const room = this.#changes[this.#changesEmitted++]
      this.emit(event, event === 'roomStart' || event === 'roomEnd' ? [room] : info === undefined ? [username, room] : [username, info, room])
    }
    this.#changes = []
    this.#changesEmitted = 0
    this.#emittingChanges = false
  }

  #listenersOf (event: string | symbol): Listener | Listener[] | undefined {
    return (this.#emitter as unknown as { _events: Record<string | symbol, Listener | Listener[] | undefined> })._events[event]
  }

  #call (listener: Listener, event: string | symbol, args: unknown[]): void {
    try {
      this.#watch(Reflect.apply(listener, this.#emitter, args), event, undefined)
    } catch (err) {
      this.#logError(err, event)
    }
  }

  /** A listener or handler that returned a promise: its rejection is logged like a throw, never left unhandled. */
  #watch (result: unknown, event: string | symbol, type: string | undefined): void {
    if (result !== undefined && isThenable(result)) {
      result.then(undefined, (err: unknown) => this.#logError(err, event, type))
    }
  }

  #logError (err: unknown, event: string | symbol, type?: string): void {
    this.#log.error({ err, event, type }, type === undefined ? 'a link server listener threw' : 'a message handler threw')
  }
}
