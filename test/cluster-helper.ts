import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { LinkUser } from '../index.js'
import { build, type BuildOptions, type Client, eventually, type Received } from './helper.js'
import type { RedisServer } from './redis-server.js'

/** How long a silent node is trusted in the cluster tests. */
export const nodeTimeoutMilliseconds = 2_000

/** A listening instance in cluster mode on `redis`, as node `nodeId` of `namespace`. */
export async function node (t: Test, redis: RedisServer, nodeId: string, options: BuildOptions = {}, namespace = 'cluster'): Promise<FastifyInstance> {
  return build(t, { listen: true, cluster: { redis: redis.url, nodeId, namespace, nodeTimeoutMilliseconds }, ...options })
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
    clients: clients.map(client => replay(client.received()))
  })
  const wanted = JSON.stringify(expected)
  await eventually(() => {
    const seen = views() as { nodes: unknown[], clients: unknown[] }
    return [...seen.nodes, ...seen.clients].every(view => JSON.stringify(view) === wanted)
  }, () => `expected every view to be ${wanted}, saw ${JSON.stringify(views())}`, timeoutMilliseconds)
}
