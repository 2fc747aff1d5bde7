import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import WebSocket from 'ws'
import type { ClusterOptions, LinkUser } from '../index.js'
import { build, type BuildOptions, Client, eventually, type Received } from './helper.js'
import type { RedisServer } from './redis-server.js'

/** How long a silent node is trusted in the cluster tests. */
export const nodeTimeoutMilliseconds = 2_000

/** What `node` takes: the options of `build`, with cluster options that replace the defaults one by one (an ioredis client for `redis`, say). */
export type NodeOptions = Omit<BuildOptions, 'cluster'> & { cluster?: Partial<ClusterOptions> }

/** A listening instance in cluster mode on `redis`, as node `nodeId` of `namespace`. */
export async function node (t: Test, redis: RedisServer, nodeId: string, options: NodeOptions = {}, namespace = 'cluster'): Promise<FastifyInstance> {
  const { cluster, ...rest } = options
  return build(t, { listen: true, cluster: { redis: redis.url, nodeId, namespace, nodeTimeoutMilliseconds, ...cluster }, ...rest })
}

/** The user list a client was told about, replayed from every frame it received. */
export function replay (received: Received[]): LinkUser[] {
  const users: LinkUser[] = []
  for (const { type, payload } of received) {
    const username = (payload as { username?: string } | undefined)?.username as string
    const index = users.findIndex(user => user.username === username)
    switch (type) {
      case 'krmx/joined': users.push({ username, isLinked: false }); break
      case 'krmx/linked': users[index].isLinked = true; break
      case 'krmx/unlinked': users[index].isLinked = false; break
      case 'krmx/left': users.splice(index, 1); break
      case 'krmx/accepted': users.length = 0; break // the user list follows, whole
    }
  }
  return users
}

/** Waits until every node's getUsers() and every linked client's replayed view are `expected`. */
export async function agree (nodes: FastifyInstance[], clients: Client[], expected: LinkUser[], timeoutMilliseconds = 10_000): Promise<void> {
  const views = (): unknown => ({
    nodes: nodes.map(app => app.linkServer.getUsers()),
    clients: clients.map(client => replay(client.frames()))
  })
  const wanted = JSON.stringify(expected)
  await eventually(() => {
    const seen = views() as { nodes: unknown[], clients: unknown[] }
    return [...seen.nodes, ...seen.clients].every(view => JSON.stringify(view) === wanted)
  }, () => `expected every view to be ${wanted}, saw ${JSON.stringify(views())}`, timeoutMilliseconds)
}

const fixture = fileURLToPath(new URL('fixtures/cluster-node.ts', import.meta.url))

export interface NodeProcess {
  child: ChildProcess
  port: number
  events: Array<{ event: string, username: string }>
}

/** A cluster node in a process of its own (test/fixtures/cluster-node.ts), with `options` of the plugin's, killed when the test ends. */
export async function spawnNodeProcess (
  t: Test, redis: RedisServer, nodeId: string, namespace: string, options: Record<string, unknown> = {}, nodeTimeout = nodeTimeoutMilliseconds
): Promise<NodeProcess> {
  const child = spawn(process.execPath, [...process.execArgv, fixture], {
    env: { ...process.env, REDIS_URL: redis.url, NODE_ID: nodeId, NAMESPACE: namespace, NODE_TIMEOUT: String(nodeTimeout), OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  })
  const events: NodeProcess['events'] = []
  let buffer = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', code => reject(new Error(`node ${nodeId} exited with ${String(code)}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let end: number
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffer.slice(0, end)) as { port?: number, event?: string, username?: string }
        buffer = buffer.slice(end + 1)
        if (line.port !== undefined) {
          resolve(line.port)
        } else {
          events.push(line as NodeProcess['events'][number])
        }
      }
    })
  })
  return { child, port, events }
}

/** Links `username` from a new connection to `port` and waits for its `frameCount` frames. */
export async function linkTo (port: number, username: string, frameCount: number): Promise<{ client: Client, frames: unknown[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  ws.on('error', () => {})
  await once(ws, 'open')
  const client = new Client(ws)
  return { client, frames: await client.linked(username, frameCount) }
}
