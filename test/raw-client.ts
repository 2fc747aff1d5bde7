import type { Socket } from 'node:net'
import { eventually, maskedTextFrame, unresponsive, version } from './helper.js'

/**
 * A WebSocket client written by hand on a real loopback socket, which answers the server's pings only when
 * told to: a phone whose network went away keeps its TCP connection open, reads nothing, answers nothing.
 */
export class RawClient {
  readonly socket: Socket
  /** The text frames that arrived, parsed, and the payloads of the pings, in order. */
  readonly frames: unknown[] = []
  readonly pings: string[] = []
  /** Both, in the order they arrived: a frame's type, or `ping <payload>`. */
  readonly arrivals: string[] = []
  answering = true
  #buffer = Buffer.alloc(0)

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
  }

  static async open (port: number): Promise<RawClient> {
    return new RawClient(await unresponsive(port))
  }

  link (username: string): void {
    this.socket.write(maskedTextFrame(JSON.stringify({ type: 'krmx/link', payload: { username, version } })))
  }

  /** Waits until `count` text frames arrived in all. */
  async received (count: number): Promise<unknown[]> {
    await eventually(() => this.frames.length >= count, () => JSON.stringify(this.frames))
    return this.frames
  }

  /** Cuts the TCP connection without a close frame. */
  cut (): void {
    this.socket.destroy()
  }

  #read (chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    while (this.#buffer.length >= 2) {
      const opcode = this.#buffer[0] & 0x0f
      let length = this.#buffer[1] & 0x7f
      let offset = 2
      if (length === 126) {
        length = this.#buffer.readUInt16BE(2)
        offset = 4
      }
      if (this.#buffer.length < offset + length) {
        return
      }
      const payload = this.#buffer.subarray(offset, offset + length)
      this.#buffer = this.#buffer.subarray(offset + length)
      if (opcode === 0x1) {
        const frame = JSON.parse(payload.toString()) as { type: string, payload?: unknown }
        this.frames.push(frame)
        this.arrivals.push(frame.type.startsWith('krmx/') ? frame.type : String(frame.payload))
      } else if (opcode === 0x9) {
        this.pings.push(payload.toString())
        this.arrivals.push(`ping ${payload.toString()}`)
        if (this.answering) {
          this.#pong(payload)
        }
      }
    }
  }

  /** Answers with a pong of its own making, as a client that answers pings it was never sent, or answers them wrongly. */
  pong (text: string): void {
    this.#pong(Buffer.from(text))
  }

  #pong (payload: Buffer): void {
    const mask = Buffer.from([1, 2, 3, 4])
    this.socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length]), mask, payload.map((byte, index) => byte ^ mask[index % 4])]))
  }
}
