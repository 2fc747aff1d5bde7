import type { Duplex } from 'node:stream'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { EncodedFrame, type Frame } from './frames.js'

/** The size of the buffers the broadcast frames of a turn are copied into (see `WriteCoalescer.share`). */
const sharedBufferBytes = 65_536
/** A frame larger than this is shared as it is, not copied. */
const maxCopiedFrameBytes = 8_192

/**
 * A broadcast frame's place in a buffer shared by the broadcasts of the turn: `bytes` from `start` to `end`.
 * A socket sent several broadcasts in a row is written one slice of that buffer, from the first one's
 * `start` to the last one's `end`.
 */
export class SharedFrame {
  readonly bytes: Buffer
  readonly start: number
  readonly end: number
  constructor (bytes: Buffer, start: number, end: number) {
    this.bytes = bytes
    this.start = start
    this.end = end
  }
}

/**
 * Writes, once per turn of the event loop (at `setImmediate`: after every I/O callback of the turn), what the
 * turn sent each socket (the user list on link, the `krmx/linked` frames of every link of the turn, the
 * broadcasts of every message read in it), in one write. Flushing after each callback (`process.nextTick`)
 * made a link storm pay one write per recipient per link: the storm scenario of `npm run bench` measures it
 * (docs/benchmarks.md#the-link).
 */
export class WriteCoalescer {
  /** Frames written to sockets, for the metrics. */
  framesSent = 0
  #corked: Connection[] = []
  readonly #maxBufferedBytes: number
  readonly #onOverflow: (connection: Connection) => void
  /** Where broadcast frames are copied, one after the other; what was handed out of it is never written again. */
  #shared = Buffer.allocUnsafeSlow(sharedBufferBytes)
  #sharedLength = 0
  readonly #flush = (): void => {
    const corked = this.#corked
    this.#corked = []
    for (const connection of corked) {
      connection.uncork()
      // What the socket could not hand to the kernel stays buffered; a client that stops reading makes it grow.
      if (connection.socket.bufferedAmount > this.#maxBufferedBytes) {
        this.#onOverflow(connection)
      }
    }
  }

  /** `onOverflow` is called for a connection whose outgoing buffer holds more than `maxBufferedBytes` after its writes. */
  constructor (maxBufferedBytes: number, onOverflow: (connection: Connection) => void) {
    this.#maxBufferedBytes = maxBufferedBytes
    this.#onOverflow = onOverflow
  }

  schedule (connection: Connection): void {
    if (this.#corked.length === 0) {
      setImmediate(this.#flush)
    }
    this.#corked.push(connection)
  }

  /**
   * Copies a broadcast frame after the turn's earlier ones, so that the broadcasts a socket gets in a row are
   * one slice to write, not a write each: with many broadcasts in a turn (a chat room's burst, a link storm's
   * `krmx/linked` frames), a socket costs one write and no object per frame.
   */
  share (frame: EncodedFrame): SharedFrame {
    const { bytes } = frame
    if (bytes.length > maxCopiedFrameBytes) {
      return new SharedFrame(bytes, 0, bytes.length)
    }
    if (this.#sharedLength + bytes.length > this.#shared.length) {
      this.#shared = Buffer.allocUnsafeSlow(sharedBufferBytes)
      this.#sharedLength = 0
    }
    const start = this.#sharedLength
    this.#sharedLength += bytes.copy(this.#shared, start)
    return new SharedFrame(this.#shared, start, this.#sharedLength)
  }
}

/** The `name` of every log line of the plugin. */
export const logName = 'fastify-link-server'

/** A frame that arrived while a link was in flight (`undefined` for a malformed one), and its size on the wire. */
export interface QueuedFrame {
  frame: Frame | undefined
  bytes: number
}

/** ws sends a Buffer as it is, without converting it again, when it is told the frame is text. */
const textFrame = { binary: false }

/** One WebSocket connection: the user it is linked to, its pending link and its queued frames. */
export class Connection {
  /** The user this connection is linked to; set by `LocalLinks` only. */
  username: string | undefined = undefined
  /** The generation of its link, which an unlink of this connection names; set by `LocalLinks` only. */
  generation: number | undefined = undefined
  /** Whether the connection answered the last ping. */
  isAlive = true
  /** Set while a link request of this connection is being decided; frames wait in `queue` meanwhile. */
  linkInFlight = false
  /** How many link requests this connection made, so that the end of one never ends the wait of a later one. */
  linkRequests = 0
  /** The unlinks and leaves of this connection's user being committed to a shared backend; frames wait meanwhile too. */
  unlinksInFlight = 0
  /** Stops the pending authentication of this connection, if any. */
  cancelAuthentication: (() => void) | undefined = undefined
  /** Frames that arrived while a link was in flight, in arrival order. */
  readonly queue: QueuedFrame[] = []
  /** The bytes of the frames in `queue`. */
  queuedBytes = 0
  /** How many times this connection was linked, so that a late authentication call can tell its own link. */
  links = 0
  /** Closes the connection if it is not linked in time; set while it is not linked. */
  linkTimer: NodeJS.Timeout | undefined = undefined
  /** Link requests rejected in a row. */
  rejections = 0
  /** With replay on: the number of the last message sent to its user, of the last one a ping asked to confirm, and of the last one confirmed. */
  sent = 0
  pinged = 0
  confirmed = 0
  /** The frames this connection may still send now (the rate limit's token bucket). */
  tokens: number
  /** When `tokens` was last refilled, in `performance.now()` milliseconds. */
  refilledAt: number
  readonly socket: WebSocket
  readonly request: FastifyRequest
  readonly #raw: Duplex
  readonly #writes: WriteCoalescer
  /** Whether encoded frames may be written to the transport directly: no extension (compression) transforms them. */
  readonly #direct: boolean
  #corked = false
  #log: FastifyBaseLogger | undefined

  constructor (socket: WebSocket, request: FastifyRequest, writes: WriteCoalescer, tokens: number, now: number) {
    this.socket = socket
    this.request = request
    this.tokens = tokens
    this.refilledAt = now
    // ws keeps the transport in a private field; corking it is the only way to batch writes.
    this.#raw = (socket as unknown as { _socket: Duplex })._socket
    this.#writes = writes
    // Without an extension, ws writes every frame at once, in order, so writing our own frames between its own is safe.
    this.#direct = socket.extensions === ''
  }

  /**
   * The logger of what happens to this connection: a child of its upgrade request's, so that every line carries
   * the request id; made at its first line, as most connections never log one.
   */
  get log (): FastifyBaseLogger {
    this.#log ??= this.request.log.child({ name: logName })
    return this.#log
  }

  /** Whether the frames of this connection wait in `queue`, for a link decision or a change being committed. */
  get isWaiting (): boolean {
    return this.linkInFlight || this.unlinksInFlight > 0
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
  #writePending (): void {
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
    this.#writePending()
    if (this.#confirmationDue) {
      this.#confirmationDue = false
      this.#askConfirmation() // in the same write as the frames
    }
    this.#raw.uncork()
  }

  /**
   * With replay on, every `confirmIntervalMilliseconds`: a ping is due after the messages sent to the user,
   * unless one is on its way already. It leaves with the next frames written; a connection written nothing
   * since the last time is pinged now. Its pong, which names the last message before it, confirms them.
   */
  confirmSent (): void {
    if (this.#confirmationDue) {
      this.#confirmationDue = false
      this.#askConfirmation()
    } else if (this.sent > this.pinged) {
      this.#confirmationDue = true
    }
  }

  #confirmationDue = false

  #askConfirmation (): void {
    if (this.sent > this.pinged && this.pinged <= this.confirmed && this.isOpen) {
      // after the messages it confirms, which may still wait for the end of the turn
      this.#writePending()
      this.pinged = this.sent
      this.socket.ping(`${this.generation as number}:${this.sent}`)
    }
  }

  /** A pong: the messages up to the one its ping named arrived; returns that number, if it confirms any for the link of `generation`. */
  confirmedBy (data: Buffer): number | undefined {
    const text = data.toString()
    const colon = text.indexOf(':')
    if (colon === -1 || text.slice(0, colon) !== String(this.generation)) {
      return undefined // a heartbeat's pong, or one for an earlier link of this connection
    }
    const number = Number(text.slice(colon + 1))
    if (!(number > this.confirmed && number <= this.pinged)) {
      return undefined // not a number this server asked to confirm
    }
    this.confirmed = number
    return number
  }

  /** Closes the socket with `code`, and terminates it if the peer does not finish the closing handshake in time. */
  close (code: number, reason: string, graceMilliseconds: number): Promise<void> {
    this.#writePending()
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
