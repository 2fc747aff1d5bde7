import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** The next IPC message of `child`; one that carries an `error` rejects. */
export async function reply<T> (child: ChildProcess): Promise<T> {
  const [message] = await once(child, 'message') as [T & { error?: string }]
  if (message.error !== undefined) {
    throw new Error(message.error)
  }
  return message
}

/** Sends `command` to `child` and resolves with its answer. */
export async function ask<T> (child: ChildProcess, command: object): Promise<T> {
  const answer = reply<T>(child)
  child.send(command)
  return await answer
}
