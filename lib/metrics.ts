import type * as PromClient from 'prom-client'
import type { MetricsRegistry } from '../types/index.js'
import { type Counts, leaveCauses, rejectionLabels, unlinkCauses } from './counts.js'
import { FST_LINK_INVALID_OPTION } from './errors.js'

/** What the metrics read when scraped: the link server's counts and sizes, and its backend's nodes. */
export interface MetricsSource {
  readonly counts: Counts
  /** Frames written to this node's sockets (counted by the write coalescer). */
  framesSent (): number
  users (): number
  linkedUsers (): number
  /** The rooms that exist, of those this node serves (1 with rooms off). */
  rooms (): number
  connections (): number
  /** The nodes alive (1 for one process, whose metrics have no gauge of it). */
  nodes (): number
  /** In cluster mode: what this node read from Redis and refused, by kind. */
  refusedInputs (): Readonly<Record<'publication' | 'record', number>> | undefined
}

/** What the link server observes as it happens, in seconds. */
export interface LinkObserver {
  authenticated (seconds: number): void
  linked (seconds: number): void
  /** In cluster mode. */
  roundTrip: ((script: string, seconds: number) => void) | undefined
}

/** The prom-client module, as `import('prom-client')` gives it. */
type PromClientModule = typeof PromClient

/** Seconds, from a fast authentication (a JWT check) to one at the default timeout. */
const authenticationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Seconds, from a round trip on loopback to one across a region. */
const roundTripBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

/**
 * Loads prom-client (an optional peer dependency, so that only applications with metrics install it) and
 * registers the link server's metrics on `registry`, or on a registry of its own when it is undefined.
 */
export async function createMetrics (
  registry: MetricsRegistry | undefined,
  source: MetricsSource,
  isCluster: boolean,
  load: () => Promise<unknown> = async () => import('prom-client')
): Promise<{ registry: PromClient.Registry, observer: LinkObserver, remove: () => void }> {
  let client: PromClientModule
  try {
    client = await load() as PromClientModule
  } catch (err) {
    throw new FST_LINK_INVALID_OPTION('metrics', `needs the prom-client package (npm install prom-client): ${(err as Error).message}`)
  }
  const target = (registry ?? new client.Registry()) as PromClient.Registry
  const { observer, metrics } = build(client, source, isCluster)
  const taken = metrics.map(metric => metricName(metric)).filter(name => target.getSingleMetric(name) !== undefined)
  if (taken.length > 0) {
    throw new FST_LINK_INVALID_OPTION('metrics.registry', `has ${taken.join(', ')} already: every link server needs a registry of its own`)
  }
  for (const metric of metrics) {
    target.registerMetric(metric)
  }
  return {
    registry: target,
    observer,
    remove: () => {
      for (const metric of metrics) {
        target.removeSingleMetric(metricName(metric))
      }
    }
  }
}

function metricName (metric: PromClient.Metric): string {
  return (metric as unknown as { name: string }).name
}

/** The metrics, registered nowhere yet, and the observer of the histograms. */
function build (client: PromClientModule, source: MetricsSource, isCluster: boolean): { observer: LinkObserver, metrics: PromClient.Metric[] } {
  const { counts } = source
  const metrics: PromClient.Metric[] = []
  const registers: PromClient.Registry[] = []
  const add = <M extends PromClient.Metric>(metric: M): M => {
    metrics.push(metric)
    return metric
  }
  const gauge = (name: string, help: string, read: () => number): void => {
    add(new client.Gauge({ name, help, registers, collect () { this.set(read()) } }))
  }
  const counter = (name: string, help: string, read: () => number): void => {
    add(new client.Counter({ name, help, registers, collect () { this.reset(); this.inc(read()) } }))
  }
  const byLabel = <K extends string>(name: string, help: string, label: string, values: readonly K[], read: Record<K, number>): void => {
    add(new client.Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect () {
        this.reset()
        for (const value of values) {
          this.inc({ [label]: value }, read[value])
        }
      }
    }))
  }
  gauge('link_server_users', 'Users in the user spaces this node serves (the whole cluster\'s, as this node mirrors them), linked or not', () => source.users())
  gauge('link_server_rooms', 'Rooms that exist, of those this node serves (1 with rooms off)', () => source.rooms())
  gauge('link_server_linked_users', 'Users linked to a connection of this node', () => source.linkedUsers())
  gauge('link_server_connections', 'Open WebSocket connections of this node, linked or not', () => source.connections())
  counter('link_server_frames_received_total', 'WebSocket frames received from clients', () => counts.framesReceived)
  counter('link_server_frames_sent_total', 'WebSocket frames sent to clients', () => source.framesSent())
  counter('link_server_links_total', 'Link requests accepted', () => counts.links)
  byLabel('link_server_link_rejections_total', 'Link requests rejected, by reason (other: a reason the application gave)',
    'reason', rejectionLabels, counts.rejections)
  byLabel('link_server_unlinks_total', 'Links ended, by cause', 'cause', unlinkCauses, counts.unlinks)
  byLabel('link_server_leaves_total', 'Users that left, by cause', 'cause', leaveCauses, counts.leaves)
  add(new client.Counter({
    name: 'link_server_invalid_messages_total',
    help: 'Application messages refused by their schema, by type (a type with a schema, else other) and reason',
    labelNames: ['type', 'reason'],
    registers,
    collect () {
      this.reset()
      for (const [type, byReason] of counts.invalidMessages) {
        for (const [reason, count] of Object.entries(byReason)) {
          if (count > 0) {
            this.inc({ type, reason }, count)
          }
        }
      }
    }
  }))
  counter('link_server_slow_consumers_total', 'Connections terminated because their outgoing buffer exceeded maxBufferedBytes', () => counts.slowConsumers)
  counter('link_server_rate_limited_total', 'Connections closed for exceeding their rate limit', () => counts.rateLimited)
  const authentication = add(new client.Histogram({
    name: 'link_server_authentication_duration_seconds',
    help: 'How long the authenticate listeners took to decide a link request',
    buckets: authenticationBuckets,
    registers
  }))
  const link = add(new client.Histogram({
    name: 'link_server_link_duration_seconds',
    help: 'From a link request to its user linked (authentication included), for accepted links',
    buckets: authenticationBuckets,
    registers
  }))
  let roundTrip: LinkObserver['roundTrip']
  if (isCluster) {
    gauge('link_server_cluster_nodes', 'Nodes alive in the cluster, as this node\'s last heartbeat saw', () => source.nodes())
    byLabel('link_server_cluster_refused_inputs_total', 'What this node read from Redis and refused: publications, log records', 'input',
      ['publication', 'record'], source.refusedInputs() as Record<'publication' | 'record', number>)
    const redis = add(new client.Histogram({
      name: 'link_server_redis_duration_seconds',
      help: 'Round trips to Redis, by script',
      labelNames: ['script'],
      buckets: roundTripBuckets,
      registers
    }))
    roundTrip = (script, seconds) => redis.observe({ script }, seconds)
  }
  return {
    observer: {
      authenticated: seconds => authentication.observe(seconds),
      linked: seconds => link.observe(seconds),
      roundTrip
    },
    metrics
  }
}
