// The one raw WebSocket client of the repository, shared by the tests, the benchmarks and the soaks: it writes
// frames of its own making straight to a loopback TCP socket, and parses the server's without decoding their
// text unless asked to, so that a load generator costs as little as possible and a test can do what no
// well-behaved client does (stop reading, stop answering pings, cut a frame in half).
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'

const opText = 0x1
const opClose = 0x8
const opPing = 0x9
const opPong = 0xa

/**
 * A masked client frame (text unless `opcode` says otherwise) holding `payload`, with a zero mask: legal, and the
 * payload needs no XOR.
 */
export function clientFrame (payload: string | Buffer, opcode = opText): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
  const length = bytes.length
  const header = length < 126
    ? Buffer.from([0x80 | opcode, 0x80 | length, 0, 0, 0, 0])
    : length < 65536
      ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff, 0, 0, 0, 0])
      : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127, 0, 0, 0, 0]), Buffer.from([length >>> 24, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]), Buffer.alloc(4)])
  return Buffer.concat([header, bytes])
}

/** A loopback socket that completed the WebSocket upgrade of `path`, and what arrived after the response, if anything. */
export async function upgradedSocket (port: number, path = '/'): Promise<{ socket: Socket, rest: Buffer }> {
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
    socket.destroy()
    throw new Error(`upgrade refused: ${response.toString('latin1', 0, 40)}`)
  }
  return { socket, rest: response.subarray(response.indexOf('\r\n\r\n') + 4) }
}

export class RawClient {
  readonly socket: Socket
  /** Called with the payload of every text frame the server sends. */
  onFrame: (payload: Buffer) => void = () => {}
  /** Called when the server's close frame arrives, with its code and reason. */
  onClose: (code: number, reason: string) => void = () => {}
  /** Called with the payload of every ping; answers it with a pong of the same payload unless it returns `false`. */
  onPing: (payload: Buffer) => boolean | undefined = () => undefined
  #pending: Buffer | undefined

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', chunk => this.#receive(chunk))
    socket.on('error', () => {})
  }

  /** Opens a connection and completes the WebSocket handshake. */
  static async open (port: number, path = '/'): Promise<RawClient> {
    const { socket, rest } = await upgradedSocket(port, path)
    const client = new RawClient(socket)
    if (rest.length > 0) {
      setImmediate(() => client.#receive(rest))
    }
    return client
  }

  send (frame: Buffer): boolean {
    return this.socket.write(frame)
  }

  /** Sends a pong of `payload`: the answer to a ping, or one the server never asked for. */
  pong (payload: Buffer): void {
    this.socket.write(clientFrame(payload, opPong))
  }

  /** Cuts the TCP connection without a close frame. */
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
      const payload = data.subarray(start, start + length)
      if (opcode === opText) {
        this.onFrame(payload)
      } else if (opcode === opClose) {
        // the server closes: answer with the same code, as a client must
        const code = length >= 2 ? data.readUInt16BE(start) : 1005
        this.socket.write(clientFrame(Buffer.from([code >> 8, code & 0xff]), opClose))
        this.onClose(code, data.toString('utf8', start + 2, start + length))
      } else if (opcode === opPing && this.onPing(payload) !== false) {
        this.pong(payload)
      }
      offset = start + length
    }
    if (offset < data.length) {
      this.#pending = data.subarray(offset)
    }
  }
}

/**
 * A new client of `path` on `port`, linked as `username` (with a new user, a user list that ends with its own
 * `krmx/linked`: users come in join order, and it joined last); its frames go nowhere after.
 */
export async function linkAs (port: number, path: string, username: string, version = '0.6.0'): Promise<RawClient> {
  const client = await RawClient.open(port, path)
  const own = Buffer.from(JSON.stringify({ type: 'krmx/linked', payload: { username } }))
  await new Promise<void>(resolve => {
    client.onFrame = payload => { if (payload.equals(own)) resolve() }
    client.send(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username, version } })))
  })
  client.onFrame = () => {}
  return client
}
