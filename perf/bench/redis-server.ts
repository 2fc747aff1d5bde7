import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

/** A free loopback port. */
export async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

/**
 * A redis-server of the benchmark's own, on a free loopback port with persistence off, ended (SIGKILL, by its pid)
 * when the process exits, also when the benchmark fails; and a connection to it, ready.
 */
export async function startRedis (): Promise<{ url: string, admin: Redis, stop: () => void }> {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
  const stop = (): void => { server.kill('SIGKILL') }
  process.once('exit', stop)
  const url = `redis://127.0.0.1:${port}`
  const admin = new Redis(url, { retryStrategy: () => 50 })
  admin.on('error', () => {}) // until redis-server listens
  await new Promise(resolve => admin.once('ready', resolve))
  return { url, admin, stop }
}
