import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import WebSocket from 'ws'
import type { ClusterOptions, LinkUser } from '../../index.js'
import { build, type BuildOptions } from './app.js'
import { Client, type Received } from './clients.js'
import { version } from './frames.js'
import { eventually } from './waits.js'
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

/** Cuts one connection of an instance from Redis (`CLIENT KILL`), by its name: `a:reader` is instance a's subscription to the log. */
export async function killConnection (admin: Redis, name: string): Promise<void> {
  const line = (await admin.client('LIST') as string).split('\n').find(line => line.includes(`name=fastify-link-server:${name}`)) as string
  await admin.client('KILL', 'ID', (/id=(\d+)/.exec(line) as RegExpExecArray)[1])
}

/**
 * `from` broadcasts every 100 ms until one broadcast reaches `to` (a broadcast published while an instance is
 * away is lost, as on any pub/sub); resolves with that first frame.
 */
export async function broadcastUntilHeard (t: Test, from: FastifyInstance, to: Client): Promise<Received> {
  let sent = 0
  const timer = setInterval(() => from.linkServer.broadcast({ type: 'ping', payload: ++sent }), 100)
  t.teardown(() => clearInterval(timer))
  const [first] = await to.take(1)
  clearInterval(timer)
  return first
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

const fixture = fileURLToPath(new URL('../fixtures/cluster-node.ts', import.meta.url))

export interface NodeProcess {
  child: ChildProcess
  port: number
  events: Array<{ event: string, username: string, room?: string }>
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

/** Links `username` from a new connection to `port` (at `path`: a room's, say) and waits for its `frameCount` frames. */
export async function linkTo (port: number, username: string, frameCount: number, path = '/'): Promise<{ client: Client, frames: unknown[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  ws.on('error', () => {})
  await once(ws, 'open')
  const client = new Client(ws)
  return { client, frames: await client.linked(username, frameCount) }
}

/** What a client of a randomized cluster run does (test/cluster/fuzz.test.ts, test/cluster-fault-fuzz.soak.ts). */
export type ClientCommand =
  | { kind: 'link', client: number, node: number, username: string }
  | { kind: 'unlink' | 'leave', client: number }
  | { kind: 'drop', client: number }

/** A client of a randomized run: a real loopback connection to `app`, whose errors (a drop) are expected. */
export async function openClient (app: FastifyInstance): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
  ws.on('error', () => {})
  await once(ws, 'open')
  return new Client(ws)
}

/** Runs a client command of a randomized run: `clients[i]` is opened on its first link, and forgotten when it drops. */
export async function runClientCommand (nodes: FastifyInstance[], clients: Array<Client | undefined>, step: ClientCommand): Promise<void> {
  if (step.kind === 'link') {
    clients[step.client] ??= await openClient(nodes[step.node])
    ;(clients[step.client] as Client).send({ type: 'krmx/link', payload: { username: step.username, version } })
  } else if (step.kind === 'drop') {
    clients[step.client]?.ws.terminate()
    clients[step.client] = undefined
  } else {
    clients[step.client]?.send({ type: `krmx/${step.kind}` })
  }
}

/** The clients of a randomized run whose sockets are open. */
export function liveClients (clients: Array<Client | undefined>): Client[] {
  return clients.filter((client): client is Client => client !== undefined && client.ws.readyState === WebSocket.OPEN)
}

/**
 * Waits until every node has the same user list and the same local links, and they stay so for `pause` ms (frames
 * that waited behind a change being committed are handled after it, so one round of answers is not enough).
 */
export async function settleCluster (nodes: FastifyInstance[], live: () => Client[], pause: number, timeoutMilliseconds = 10_000): Promise<void> {
  const same = (): boolean => nodes.every(app => JSON.stringify(app.linkServer.getUsers()) === JSON.stringify(nodes[0].linkServer.getUsers()))
  let settled = ''
  while (settled !== clusterState(nodes)) {
    settled = clusterState(nodes)
    await Promise.all(live().map(async client => await client.settle(timeoutMilliseconds).catch(() => {})))
    await eventually(same, () => clusterState(nodes), timeoutMilliseconds)
    await new Promise(resolve => setTimeout(resolve, pause))
  }
}

/** Every node's user list and count of local links, as JSON. */
export function clusterState (nodes: FastifyInstance[]): string {
  return JSON.stringify(nodes.map(app => [app.linkServer.getUsers(), app.linkServer.getStats().linkedUsers]))
}

/**
 * Asserts that each linked user has exactly one connection in the whole cluster: a message to it, sent from a node it
 * is not necessarily on, reaches exactly one of `live`, no connection is linked to two users, and the nodes count as
 * many local links. Answers what each client received.
 */
export async function probeLinkedUsers (nodes: FastifyInstance[], live: Client[]): Promise<Map<Client, string[]>> {
  const linked = nodes[0].linkServer.getUsers().filter(user => user.isLinked).map(user => user.username)
  const probes = new Map<Client, string[]>(live.map(client => [client, []]))
  for (const client of live) {
    client.ws.on('message', data => {
      const frame = JSON.parse(data.toString()) as { type: string, payload: string }
      if (frame.type === 'probe') {
        (probes.get(client) as string[]).push(frame.payload)
      }
    })
  }
  for (const [index, user] of linked.entries()) {
    nodes[index % nodes.length].linkServer.send(user, { type: 'probe', payload: user })
  }
  await eventually(() => [...probes.values()].flat().length >= linked.length,
    () => `probes ${JSON.stringify([...probes.values()])} for ${JSON.stringify(linked)}; ${clusterState(nodes)}`)
  await Promise.all(live.map(async client => await client.settle()))
  assert.deepEqual([...probes.values()].flat().sort(), [...linked].sort(), 'each linked user has exactly one connection in the cluster')
  assert.ok([...probes.values()].every(received => received.length <= 1), 'no connection is linked to two users')
  assert.equal(nodes.reduce((sum, app) => sum + app.linkServer.getStats().linkedUsers, 0), linked.length, `the nodes count as many local links: ${clusterState(nodes)}`)
  return probes
}
