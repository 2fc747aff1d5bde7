import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { EncodedFrame, numberedFrame, numberedParts } from '../frames.js'
import type { PendingLink } from '../link/pending-link.js'
import { inRoom } from '../rooms/in-room.js'
import type { Room } from '../rooms/room.js'
import { askConfirmation } from '../sessions/confirmations.js'
import type { LocalLink } from '../space/local-links.js'
import type { Inbound } from './inbound.js'
import type { SharedFrame, WriteCoalescer } from './write-coalescer.js'

/** The `name` of every log line of the plugin. */
export const logName = 'fastify-link-server'

/** ws sends a Buffer as it is, without converting it again, when it is told the frame is text. */
const textFrame = { binary: false }

/**
 * One WebSocket connection: its socket and the writes of the turn. What others know of it hangs off it, each
 * written by its owner only: `link` by the user space's `LocalLinks`, `pending` by the link flow, `inbound` by
 * the gateway.
 */
export class Connection {
  /** Whether the connection answered the last ping. */
  isAlive = true
  /** The link of this connection, while it is linked; set by `LocalLinks` only. */
  link: LocalLink | undefined = undefined
  /** Its link request being decided, if any; set by the link flow only. Frames wait in `inbound` meanwhile. */
  pending: PendingLink | undefined = undefined
  /** What the gateway keeps of its incoming frames: the queue, the rate limit, the link timer. */
  readonly inbound: Inbound
  /** The room the connection belongs to for its whole life: the one its URL names (with rooms off, the endpoint's). */
  readonly room: Room
  readonly socket: WebSocket
  readonly request: FastifyRequest
  readonly #raw: Duplex
  readonly #writes: WriteCoalescer
  /** Whether encoded frames may be written to the transport directly: no extension (compression) transforms them. */
  readonly #direct: boolean
  #corked = false
  #log: FastifyBaseLogger | undefined

  constructor (socket: WebSocket, request: FastifyRequest, writes: WriteCoalescer, inbound: Inbound, room: Room) {
    this.room = room
    this.socket = socket
    this.request = request
    this.inbound = inbound
    // ws keeps the transport in a private field; corking it is the only way to batch writes.
    this.#raw = (socket as unknown as { _socket: Duplex })._socket
    this.#writes = writes
    // Without an extension, ws writes every frame at once, in order, so writing our own frames between its own is safe.
    this.#direct = socket.extensions === ''
  }

  /**
   * The logger of what happens to this connection: a child of its upgrade request's, so that every line carries
   * the request id (and its room's name, with rooms on); made at its first line, as most connections never log one.
   */
  get log (): FastifyBaseLogger {
    this.#log ??= this.request.log.child(inRoom({ name: logName }, this.room.name))
    return this.#log
  }

  /** Whether the frames of this connection wait, for a link decision or a change being committed. */
  get isWaiting (): boolean {
    return this.pending !== undefined || this.inbound.holds > 0
  }

  /** Whether frames can still be sent: the socket is open and no closing handshake has begun. */
  get isOpen (): boolean {
    return this.socket.readyState === this.socket.OPEN
  }

  /** Sends one text frame, if the socket is still open; the same encoded frame can serve many sockets. */
  send (frame: EncodedFrame): void {
    if (!this.isOpen) {
      return
    }
    this.#schedule()
    this.#writes.framesSent++
    if (this.#direct) {
      this.#endSlice()
      this.#pending.push(frame.bytes)
    } else {
      this.socket.send(frame.payload, textFrame)
    }
  }

  /**
   * Sends a message numbered for a session client (see `numberedParts`): on a direct connection without copying the
   * message, as its three parts in a row; through ws as one frame.
   */
  sendNumbered (frame: EncodedFrame, number: number): void {
    if (!this.isOpen) {
      return
    }
    const parts = this.#direct ? numberedParts(frame, number) : undefined
    if (parts === undefined) {
      this.send(numberedFrame(frame, number))
      return
    }
    this.#schedule()
    this.#writes.framesSent++
    this.#endSlice()
    this.#pending.push(...parts)
  }

  /**
   * Sends one frame of a broadcast, if the socket is still open: `shared` is where the broadcast put the frame
   * in the turn's shared buffer, made by the first socket that needs it (returned, for the next ones). Right
   * after the broadcast before it, only the end of this socket's slice moves.
   */
  sendShared (frame: EncodedFrame, shared: SharedFrame | undefined): SharedFrame | undefined {
    if (!this.isOpen) {
      return shared
    }
    if (!this.#direct) {
      this.send(frame)
      return shared
    }
    shared ??= this.#writes.share(frame)
    this.#schedule()
    this.#writes.framesSent++
    if (this.#slice === shared.bytes && this.#sliceEnd === shared.start) {
      this.#sliceEnd = shared.end
    } else {
      this.#endSlice()
      this.#slice = shared.bytes
      this.#sliceStart = shared.start
      this.#sliceEnd = shared.end
    }
    return shared
  }

  /**
   * Whether encoded frames go to the transport as they are (no extension transforms them), so that several can
   * be written as one buffer with `sendConcatenated`.
   */
  get isDirect (): boolean {
    return this.#direct
  }

  /** Sends `count` whole encoded frames, one after the other in `bytes`, in one write; for a direct connection only. */
  sendConcatenated (bytes: Buffer, count: number): void {
    if (!this.isOpen) {
      return
    }
    this.send(new EncodedFrame(bytes))
    this.#writes.framesSent += count - 1
  }

  /** The buffers written at the end of the turn, in order; the slice of shared broadcasts being extended comes after them. */
  readonly #pending: Buffer[] = []
  #slice: Buffer | undefined = undefined
  #sliceStart = 0
  #sliceEnd = 0

  #schedule (): void {
    if (!this.#corked) {
      // Until the end of the turn: what ws writes (frames through an extension, pings, a closing frame) waits too.
      this.#corked = true
      this.#raw.cork()
      this.#writes.schedule(this)
    }
  }

  #endSlice (): void {
    if (this.#slice !== undefined) {
      this.#pending.push(this.#slice.subarray(this.#sliceStart, this.#sliceEnd))
      this.#slice = undefined
    }
  }

  /**
   * Writes what this turn sent a direct connection into the corked transport, now: before anything ws writes
   * itself (a closing frame, a confirmation ping), so that it is not overtaken; nothing once the socket is closing.
   */
  writePending (): void {
    this.#endSlice()
    const pending = this.#pending
    if (pending.length === 0) {
      return
    }
    if (this.isOpen) {
      for (const bytes of pending) {
        this.#raw.write(bytes)
      }
    }
    pending.length = 0
  }

  /** The end of the turn: everything it sent, and a confirmation ping if one is due, leave in one write. */
  uncork (): void {
    this.#corked = false
    this.writePending()
    if (this.link?.confirmationDue === true) {
      askConfirmation(this, this.link) // in the same write as the frames
    }
    this.#raw.uncork()
  }

  /** Closes the socket with `code`, and terminates it if the peer does not finish the closing handshake in time. */
  close (code: number, reason: string, graceMilliseconds: number): Promise<void> {
    this.writePending()
    return closeSocket(this.socket, code, reason, graceMilliseconds)
  }
}

/** Closes `socket` with `code`, and terminates it if the peer does not finish the closing handshake in time. */
export function closeSocket (socket: WebSocket, code: number, reason: string, graceMilliseconds: number): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(() => socket.terminate(), graceMilliseconds)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.close(code, reason)
  })
}
