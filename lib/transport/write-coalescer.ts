import type { EncodedFrame } from '../frames.js'
import type { Connection } from './connection.js'

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
