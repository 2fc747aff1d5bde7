import type { LinkUser } from '../types/index.js'

/** The answer to a claim: the user is reserved for one link, or why it is not. */
export type ClaimResult =
  | { claimed: true, isNewUser: boolean }
  | { claimed: false, refusal: 'not-accepting-new-users' | 'already-linked' }

/**
 * Who exists and which connection each user is linked to.
 *
 * The link flow awaits `claim`, so a registry shared between instances can answer it over the
 * network; a claim is the only way to reserve a user for linking, so two connections racing to
 * link one user never both get it.
 */
export interface UserRegistry<C> {
  /** Reserves `username` for one pending link, if it exists and is free, or may be created. */
  claim (username: string, acceptNewUsers: boolean): Promise<ClaimResult>
  /** Gives up a claim that did not become a link. */
  release (username: string): void
  has (username: string): boolean
  connectionOf (username: string): C | undefined
  /** Creates `username`, unlinked. */
  join (username: string): void
  /** Links `username` to `connection`; this ends its claim. */
  link (username: string, connection: C): void
  unlink (username: string): void
  leave (username: string): void
  /** Every user in join order. */
  users (): LinkUser[]
  /** Every username in join order. */
  usernames (): string[]
  /** How many users exist. */
  readonly size: number
}

interface UserEntry<C> {
  connection: C | undefined
}

/** The registry of one process. Usernames are `Map` keys, so `__proto__` is an ordinary user. */
export class LocalRegistry<C> implements UserRegistry<C> {
  readonly #users = new Map<string, UserEntry<C>>()
  readonly #claims = new Set<string>()

  get size (): number {
    return this.#users.size
  }

  async claim (username: string, acceptNewUsers: boolean): Promise<ClaimResult> {
    const entry = this.#users.get(username)
    if (entry === undefined && !acceptNewUsers) {
      return { claimed: false, refusal: 'not-accepting-new-users' }
    }
    if (this.#claims.has(username) || entry?.connection !== undefined) {
      return { claimed: false, refusal: 'already-linked' }
    }
    this.#claims.add(username)
    return { claimed: true, isNewUser: entry === undefined }
  }

  release (username: string): void {
    this.#claims.delete(username)
  }

  has (username: string): boolean {
    return this.#users.has(username)
  }

  connectionOf (username: string): C | undefined {
    return this.#users.get(username)?.connection
  }

  join (username: string): void {
    this.#users.set(username, { connection: undefined })
  }

  link (username: string, connection: C): void {
    this.#claims.delete(username)
    this.#users.set(username, { connection })
  }

  unlink (username: string): void {
    this.#users.set(username, { connection: undefined })
  }

  leave (username: string): void {
    this.#users.delete(username)
  }

  users (): LinkUser[] {
    const users: LinkUser[] = []
    for (const [username, entry] of this.#users) {
      users.push({ username, isLinked: entry.connection !== undefined })
    }
    return users
  }

  usernames (): string[] {
    return [...this.#users.keys()]
  }
}
