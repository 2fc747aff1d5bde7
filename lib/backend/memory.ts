import type { Backend, BackendSink, Bus } from './backend.js'
import type { EncodedFrame } from '../frames.js'
import type { Sessions } from '../options/resolve.js'
import { MemoryStore, memoryNodeId } from './memory-store.js'

export { memoryNodeId }

/**
 * The user space of one process, the default backend. Every commit is applied before it returns, so that a
 * change, its frames and its events all happen within the call that made it; a broadcast reaches this node's
 * users through the sink at once, as another node's would.
 */
export class MemoryBackend implements Backend {
  readonly nodeId = memoryNodeId
  readonly nodes = 1
  readonly isAvailable = true
  readonly store: MemoryStore
  readonly bus: Bus
  #sink: BackendSink | undefined

  constructor (sessions: Sessions) {
    this.store = new MemoryStore(sessions)
    this.bus = {
      // One process: every linked user is this node's, and the link server sends to it directly.
      deliver: (_node: string, username: string, frame: EncodedFrame) => (this.#sink as BackendSink).deliver(username, frame, 0),
      broadcast: (frame: EncodedFrame, skip: string | undefined) => (this.#sink as BackendSink).broadcast(frame, skip)
    }
  }

  async start (sink: BackendSink): Promise<void> {
    this.#sink = sink
    this.store.start(sink)
  }

  async closeNode (): Promise<void> {
    this.store.closeNode()
  }

  async stop (): Promise<void> {
    this.store.stop()
  }
}
