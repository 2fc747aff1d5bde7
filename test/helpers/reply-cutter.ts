import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * A loopback proxy in front of a redis-server that can lose a reply as a network cut does: armed with the SHA of a
 * script, it forwards the command that runs it, and cuts that connection when Redis answers it, so the script ran
 * and its caller never hears how. Every other command and reply passes untouched. It can also cut every connection
 * for a while (`blackout`), refusing new ones until it ends.
 */
export class ReplyCutter {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  /** The SHA of the script (EVALSHA), and the end of its text (EVAL, the first time a connection runs it). */
  #armed: [string, string] | undefined
  /** How many replies it cut. */
  cuts = 0
  /** Until when (`Date.now()`) every connection is cut. */
  #darkUntil = 0

  private constructor (server: Server) {
    this.#server = server
  }

  static async start (t: Test, redisPort: number): Promise<ReplyCutter> {
    const server = createServer()
    const cutter = new ReplyCutter(server)
    server.on('connection', client => cutter.#pipe(client, redisPort))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(async () => {
      for (const socket of cutter.#sockets) {
        socket.destroy()
      }
      server.close()
      await once(server, 'close')
    })
    return cutter
  }

  get url (): string {
    return `redis://127.0.0.1:${(this.#server.address() as { port: number }).port}`
  }

  /** The next reply to a call of the script `lua` is cut, with its connection. */
  cutReplyTo (lua: string): void {
    this.#armed = [createHash('sha1').update(lua).digest('hex'), lua.slice(-200)]
  }

  /** The next reply to a command whose request holds `marker` (a command name as ioredis writes it, `subscribe`) is cut, with its connection. */
  cutReplyToCommand (marker: string): void {
    this.#armed = [marker, marker]
  }

  /** No reply is cut any more (the cut armed last is dropped if it did not happen). */
  disarm (): void {
    this.#armed = undefined
  }

  /** When (`Date.now()`) the last blackout ends. */
  get darkUntil (): number {
    return this.#darkUntil
  }

  /** Cuts every connection, and each new one, for `milliseconds`: a network cut between the node and Redis. */
  blackout (milliseconds: number): void {
    this.#darkUntil = Date.now() + milliseconds
    for (const socket of this.#sockets) {
      socket.destroy()
    }
  }

  #pipe (client: Socket, redisPort: number): void {
    if (Date.now() < this.#darkUntil) {
      client.destroy()
      return
    }
    const redis = connect(redisPort, '127.0.0.1')
    this.#sockets.add(client).add(redis)
    let awaited = false
    client.on('data', chunk => {
      if (this.#armed !== undefined && (chunk.includes(this.#armed[0]) || chunk.includes(this.#armed[1]))) {
        this.#armed = undefined
        awaited = true
      }
      redis.write(chunk)
    })
    redis.on('data', chunk => {
      if (awaited) {
        // Nothing more reaches the client; the connection is cut a little later, so that Redis has run the command
        // even if this was the answer to one sent before it.
        awaited = false
        this.cuts++
        client.pause()
        redis.removeAllListeners('data')
        setTimeout(() => {
          client.destroy()
          redis.destroy()
        }, 20)
        return
      }
      client.write(chunk)
    })
    for (const socket of [client, redis]) {
      socket.on('error', () => {})
      socket.on('close', () => {
        this.#sockets.delete(socket)
        client.destroy()
        redis.destroy()
      })
    }
  }
}
