import type { AuthenticateInfo, AuthenticateReject, LinkServerEvents, MarkAsync } from '../types/index.js'

export type AuthenticateListener = LinkServerEvents['authenticate']

/** The reason a link was refused, or `undefined` when it is accepted. */
export type Decision = string | undefined

export const authenticationTimeoutReason = 'authentication timeout'
export const authenticationFailedReason = 'authentication failed'
export const authenticationCancelledReason = 'authentication cancelled'

/** An authentication under way: its decision, and a way to stop waiting for it. */
export interface PendingAuthentication {
  decision: Promise<Decision>
  cancel: () => void
}

/**
 * Runs the `authenticate` listeners for one link request and decides it: the first `reject`
 * wins; a listener that throws rejects with the error's message; handlers given to `markAsync`
 * are awaited until `timeoutMilliseconds`, and the timer is cleared as soon as the decision is made.
 */
export function authenticate (
  listeners: readonly AuthenticateListener[],
  username: string,
  info: AuthenticateInfo,
  timeoutMilliseconds: number,
  onListenerError: (error: unknown) => void
): PendingAuthentication {
  let resolveDecision!: (decision: Decision) => void
  const decision = new Promise<Decision>(resolve => { resolveDecision = resolve })
  let decided = false
  let timer: NodeJS.Timeout | undefined
  const decide = (outcome: Decision): void => {
    if (decided) {
      return
    }
    decided = true
    clearTimeout(timer)
    resolveDecision(outcome)
  }

  let reason: Decision
  let listenersDone = false
  const reject: AuthenticateReject = (why) => {
    if (reason !== undefined) {
      return
    }
    reason = String(why)
    if (listenersDone) {
      decide(reason)
    }
  }
  const handlers: Promise<void>[] = []
  const markAsync: MarkAsync = (handler) => {
    handlers.push(new Promise<void>(resolve => { resolve(handler()) }))
  }

  for (const listener of listeners) {
    try {
      listener(username, info, reject, markAsync)
    } catch (error) {
      onListenerError(error)
      reject(messageOf(error))
    }
  }
  listenersDone = true

  if (reason !== undefined || handlers.length === 0) {
    decide(reason)
  } else {
    timer = setTimeout(decide, timeoutMilliseconds, authenticationTimeoutReason)
    Promise.all(handlers).then(() => decide(reason), (error: unknown) => decide(messageOf(error)))
  }
  return { decision, cancel: () => decide(authenticationCancelledReason) }
}

function messageOf (error: unknown): string {
  return error instanceof Error ? error.message : authenticationFailedReason
}
