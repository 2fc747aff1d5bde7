import type { FastifyInstance } from 'fastify'
import type { LinkServerEvents, RoomHandle } from '../../index.js'

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

/**
 * Records the lifecycle events of the link server (all but `authenticate`), in order. Each event's last argument,
 * its room, is checked: with rooms off it must be the endpoint's one room, and is left out; with rooms on it is
 * recorded as `room:<name>`.
 */
export function record (app: FastifyInstance): RecordedEvent[] {
  const events: RecordedEvent[] = []
  let endpoint: RoomHandle | undefined
  try {
    endpoint = app.linkServer.room('')
  } catch {} // rooms on
  const names = ['listen', 'close', 'join', 'link', 'unlink', 'leave', 'message', 'invalidMessage', 'roomStart', 'roomEnd'] as const
  const roomless = new Set<string>(['listen', 'close'])
  for (const name of names) {
    app.linkServer.on(name, (...args: unknown[]) => {
      let room: string | undefined
      if (!roomless.has(name)) {
        const handle = args.pop() as RoomHandle
        if (endpoint !== undefined && handle !== endpoint) {
          events.push(['close', 'an event was emitted with a room other than the endpoint\'s', handle])
        }
        room = endpoint === undefined ? `room:${handle.name}` : undefined
      }
      // A link that attached no data with replay off says nothing beside its username: recorded as [link, username].
      const info = args[1] as { data?: unknown, replay?: unknown } | undefined
      if (name === 'link' && info !== undefined && info.data === undefined && info.replay === undefined && Object.keys(info).length === 2) {
        args = [args[0]]
      }
      events.push(room === undefined ? [name, ...args] : [name, ...args, room])
    })
  }
  return events
}

/** The arguments of an event's listener without its last, the room. */
export type Roomless<A extends unknown[]> = A extends [...infer Rest, RoomHandle<any>] ? Rest : A

/**
 * Resolves with the arguments of the next `event` of the link server, but its room: with rooms off it must be the
 * endpoint's one room (else the promise rejects), with rooms on it is left out.
 */
export function next<E extends keyof LinkServerEvents> (app: FastifyInstance, event: E): Promise<Roomless<Parameters<LinkServerEvents[E]>>> {
  let endpoint: RoomHandle | undefined
  try {
    endpoint = app.linkServer.room('')
  } catch {} // rooms on
  return new Promise((resolve, reject) => {
    app.linkServer.once(event, ((...args: unknown[]) => {
      const room = event === 'listen' || event === 'close' ? endpoint : args.pop()
      if (endpoint !== undefined && room !== endpoint) {
        reject(new Error(`${event} was emitted with a room other than the endpoint's`))
      }
      resolve(args as Roomless<Parameters<LinkServerEvents[E]>>)
    }) as LinkServerEvents[E])
  })
}
