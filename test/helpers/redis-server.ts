import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { Test } from 'tap'

/** A free loopback port, found by binding port 0 and closing. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/**
 * A real `redis-server` of this test file's own, on a free loopback port, with persistence off (no
 * RDB snapshots, no AOF): a restart loses its data, as a crashed Redis without persistence does. It is
 * ended, by its pid, when the test ends.
 */
export class RedisServer {
  readonly port: number
  #process: ChildProcess | undefined

  private constructor (port: number) {
    this.port = port
  }

  static async start (t: Test, extra: string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort())
    await server.#spawn(extra)
    t.teardown(() => server.stop())
    return server
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid (): number | undefined {
    return this.#process?.pid
  }

  async #spawn (extra: string[]): Promise<void> {
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning', '--logfile', '', ...extra
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#process = child
    let output = ''
    child.stdout.on('data', chunk => { output += String(chunk) })
    child.stderr.on('data', chunk => { output += String(chunk) })
    const exited = once(child, 'exit').then(() => { throw new Error(`redis-server exited: ${output}`) })
    await Promise.race([exited, this.#waitForPort()])
    exited.catch(() => {})
  }

  async #waitForPort (): Promise<void> {
    const { connect } = await import('node:net')
    for (let attempt = 0; attempt < 200; attempt++) {
      const socket = connect(this.port, '127.0.0.1')
      const ok = await new Promise<boolean>(resolve => {
        socket.once('connect', () => resolve(true))
        socket.once('error', () => resolve(false))
      })
      socket.destroy()
      if (ok) {
        return
      }
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    throw new Error(`redis-server did not listen on port ${this.port}`)
  }

  /** Ends the server (SIGKILL: no chance to save, as in a crash) and waits until it is gone. */
  async stop (): Promise<void> {
    const child = this.#process
    this.#process = undefined
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }

  /** Starts the server again on the same port, empty. */
  async restart (extra: string[] = []): Promise<void> {
    await this.stop()
    await this.#spawn(extra)
  }
}
