// A WebSocket client for the load generator that costs as little as possible, so that the server is
// what the benchmark measures: it writes pre-built masked frames straight to the TCP socket and
// parses the server's frames without decoding their text unless asked to.
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'

/** A masked client text frame of `text`, with a zero mask: legal, and the payload needs no XOR. */
export function clientFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  const length = payload.length
  const header = length < 126
    ? Buffer.from([0x81, 0x80 | length, 0, 0, 0, 0])
    : length < 65536
      ? Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff, 0, 0, 0, 0])
      : Buffer.concat([Buffer.from([0x81, 0x80 | 127, 0, 0, 0, 0]), Buffer.from([length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]), Buffer.alloc(4)])
  return Buffer.concat([header, payload])
}

export class RawClient {
  readonly socket: Socket
  /** Called with the payload of every text frame the server sends. */
  onFrame: (payload: Buffer) => void = () => {}
  /** Called when the server's close frame arrives, with its code and reason. */
  onClose: (code: number, reason: string) => void = () => {}
  #pending: Buffer | undefined

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', chunk => this.#receive(chunk))
    socket.on('error', () => {})
  }

  /** Opens a connection and completes the WebSocket handshake. */
  static async open (port: number, path = '/'): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    await once(socket, 'connect')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    let response = Buffer.alloc(0)
    while (response.indexOf('\r\n\r\n') === -1) {
      const [chunk] = await once(socket, 'data') as [Buffer]
      response = Buffer.concat([response, chunk])
    }
    if (!response.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) {
      throw new Error(`upgrade refused: ${response.toString('latin1', 0, 40)}`)
    }
    const client = new RawClient(socket)
    const rest = response.subarray(response.indexOf('\r\n\r\n') + 4)
    if (rest.length > 0) {
      setImmediate(() => client.#receive(rest))
    }
    return client
  }

  send (frame: Buffer): boolean {
    return this.socket.write(frame)
  }

  close (): void {
    this.socket.destroy()
  }

  #receive (chunk: Buffer): void {
    let data = chunk
    if (this.#pending !== undefined) {
      data = Buffer.concat([this.#pending, chunk])
      this.#pending = undefined
    }
    let offset = 0
    while (offset + 2 <= data.length) {
      const opcode = data[offset] & 0x0f
      let length = data[offset + 1] & 0x7f
      let start = offset + 2
      if (length === 126) {
        if (start + 2 > data.length) break
        length = data.readUInt16BE(start)
        start += 2
      } else if (length === 127) {
        if (start + 8 > data.length) break
        length = data.readUInt32BE(start + 4)
        start += 8
      }
      if (start + length > data.length) break
      if (opcode === 0x1) {
        this.onFrame(data.subarray(start, start + length))
      } else if (opcode === 0x8) {
        // the server closes: answer with the same code (masked with a zero mask), as a client must
        const code = length >= 2 ? data.readUInt16BE(start) : 1005
        this.socket.write(Buffer.from([0x88, 0x80 | 2, 0, 0, 0, 0, code >> 8, code & 0xff]))
        this.onClose(code, data.toString('utf8', start + 2, start + length))
      } else if (opcode === 0x9) {
        // a heartbeat ping: answer with a pong of the same payload (masked with a zero mask)
        this.socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | length, 0, 0, 0, 0]), data.subarray(start, start + length)]))
      }
      offset = start + length
    }
    if (offset < data.length) {
      this.#pending = data.subarray(offset)
    }
  }
}
