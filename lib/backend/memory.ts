import type { Backend, BackendSink, RoomBackend } from './backend.js'
import type { Sessions } from '../options/resolve.js'
import { Mailboxes } from './mailbox.js'
import { MemoryStore, memoryNodeId } from './memory-store.js'

export { memoryNodeId }

/**
 * The user spaces of one process, the default backend: a store for each room this process serves. Every commit
 * is applied before it returns, so that a change, its frames and its events all happen within the call that made
 * it; a broadcast reaches this node's users through the sink at once, as another node's would.
 */
export class MemoryBackend implements Backend {
  readonly nodeId = memoryNodeId
  readonly nodes = 1
  readonly isAvailable = true
  readonly keepsRooms = false
  readonly #sessions: Sessions
  readonly #stores = new Map<string, MemoryStore>()
  /** The rooms that have users, or a claim that may create it: what `maxRooms` counts. */
  readonly #occupied = new Set<string>()
  /** With replay on: the mailboxes of every room, swept by one timer. */
  readonly #mailboxes = new Mailboxes()

  constructor (sessions: Sessions) {
    this.#sessions = sessions
  }

  /** How many messages the mailboxes keep, for every user of every room. */
  get keptMessages (): number {
    return this.#mailboxes.kept
  }

  open (name: string, sink: BackendSink): RoomBackend {
    const store = new MemoryStore(name, this.#sessions, sink, this.#mailboxes, this.#occupied)
    this.#stores.set(name, store)
    return {
      store,
      serve: async () => {},
      loaded: true,
      bus: {
        // One process: every linked user is this node's, and the link server sends to it directly.
        deliver: (_node, username, frame) => sink.deliver(username, frame, 0),
        broadcast: (frame, skip) => sink.broadcast(frame, skip)
      }
    }
  }

  close (name: string): void {
    this.#stores.get(name)?.stop()
    this.#stores.delete(name)
  }

  async start (): Promise<void> {
    const replay = this.#sessions.replay
    if (replay !== undefined) {
      this.#mailboxes.sweepEvery(replay.maxAgeMilliseconds)
    }
  }

  /** Every user of every room leaves, room by room, in join order. */
  async closeNode (): Promise<void> {
    for (const store of [...this.#stores.values()]) {
      store.closeNode()
    }
  }

  async stop (): Promise<void> {
    this.#mailboxes.stop()
    for (const store of this.#stores.values()) {
      store.stop()
    }
  }
}
