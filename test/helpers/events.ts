import type { FastifyInstance } from 'fastify'
import type { LinkServerEvents } from '../../index.js'

/** One line of the instance's log, as pino writes it. */
export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** Collects what the instance logs: pass `stream` as the logger's stream, then await the lines. */
export class LogRecorder {
  readonly lines: LogLine[] = []
  #wake: (() => void) | undefined
  readonly stream = {
    write: (line: string): void => {
      this.lines.push(JSON.parse(line) as LogLine)
      this.#wake?.()
    }
  }

  /** Waits until `count` lines were logged and returns them all; after `timeoutMilliseconds` it fails, naming what was logged. */
  async count (count: number, timeoutMilliseconds = 10_000): Promise<LogLine[]> {
    const deadline = Date.now() + timeoutMilliseconds
    while (this.lines.length < count) {
      const woken = await new Promise<boolean>(resolve => {
        const timer = setTimeout(resolve, deadline - Date.now(), false)
        this.#wake = () => { clearTimeout(timer); resolve(true) }
      })
      if (!woken) {
        throw new Error(`expected ${count} log lines, ${this.lines.length} were logged: ${JSON.stringify(this.lines)}`)
      }
    }
    return this.lines
  }
}

export type RecordedEvent = [keyof LinkServerEvents, ...unknown[]]

/** Records the lifecycle events of the link server (all but `authenticate`), in order. */
export function record (app: FastifyInstance): RecordedEvent[] {
  const events: RecordedEvent[] = []
  const names = ['listen', 'close', 'join', 'link', 'unlink', 'leave', 'message', 'invalidMessage'] as const
  for (const name of names) {
    app.linkServer.on(name, (...args: unknown[]) => {
      // A link that attached no data with replay off says nothing beside its username: recorded as [link, username].
      const info = args[1] as { data?: unknown, replay?: unknown } | undefined
      if (name === 'link' && info !== undefined && info.data === undefined && info.replay === undefined && Object.keys(info).length === 2) {
        args = [args[0]]
      }
      events.push([name, ...args])
    })
  }
  return events
}

/** Resolves with the arguments of the next `event` of the link server. */
export function next<E extends keyof LinkServerEvents> (app: FastifyInstance, event: E): Promise<Parameters<LinkServerEvents[E]>> {
  return new Promise(resolve => {
    app.linkServer.once(event, ((...args: Parameters<LinkServerEvents[E]>) => resolve(args)) as LinkServerEvents[E])
  })
}
