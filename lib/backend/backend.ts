/**
 * The seam between the link server and whatever holds the user space: one process
 * (`memory.ts`, the default) or many instances sharing one Redis (`redis.ts`).
 *
 * A backend decides; the link server applies. Every change to the user space (join, link, unlink,
 * leave) is committed through the backend, which hands it back, in one order for every node, to the
 * `apply` of every node, its own included. Each node keeps its mirror of the user space and sends its
 * own connections their frames from those applied changes; only the node named as the change's
 * `origin` emits its events, so that an event fires once in the whole cluster.
 */

import type { EncodedFrame } from '../frames.js'

/** A change to the user space, as every node applies it. */
export type Change = JoinChange | LinkChange | UnlinkChange | LeaveChange

/** The node that made a change, which alone emits its events; `''` for a change that has no events (a repair). */
interface ChangeBase {
  username: string
  origin: string
}

export interface JoinChange extends ChangeBase {
  op: 'join'
  /** Where the user is in join order: the users are ordered by it. */
  order: number
}

export interface LinkChange extends ChangeBase {
  op: 'link'
  /** The node that holds the connection. */
  node: string
  /** Names this link: an unlink or a sweep that names another generation does nothing. */
  generation: number
  /** The claim the link was made with, so that the node holding the connection finds it. */
  token: string
  /** The link made the user: it joins first, with the generation as its join order. */
  isNewUser: boolean
  /** The JSON of the data the link attached to the user, or `undefined` for none. */
  data: string | undefined
  /** With replay on, on the node that made the link: what the user missed, to send after the user list. */
  replay?: Replay
}

/** What a user missed: the messages its earlier connections did not confirm, and how many the bounds dropped. */
export interface Replay {
  messages: EncodedFrame[]
  lost: number
  /** The number of the last message addressed to the user: the live messages that follow are numbered after it. */
  head: number
}

export interface UnlinkChange extends ChangeBase {
  op: 'unlink'
  /** The generation of the link this ends. */
  generation: number
  /** Why the link ended; `takeover`: another connection took the user over, and the old connection is closed. */
  cause: UnlinkCause
}

/**
 * Why a link ended: its client asked, closed or broke the protocol; its connection did not answer the heartbeat;
 * it broke a limit; its user sent an invalid message (`invalidMessage: 'unlink'`); the application unlinked it;
 * its node died; another connection took the user over; its node closed.
 */
export type UnlinkCause = 'client' | 'heartbeat' | 'limit' | 'invalid_message' | 'server' | 'node_death' | 'takeover' | 'close'

/** Why a user left: its client asked; the application kicked it; its reconnection window ended; the server closed. */
export type LeaveCause = 'client' | 'kick' | 'window' | 'close'

export interface LeaveChange extends ChangeBase {
  op: 'leave'
  cause: LeaveCause
}

/** Why a claim or a link was refused; `no-room`: the room does not exist, and `acceptNewRooms` is off. */
export type Refusal = 'already-linked' | 'not-accepting-new-users' | 'full' | 'no-room' | 'unavailable'

/** The answer to a claim: the user is reserved for one pending link, or why it is not. */
export type ClaimResult =
  | { claimed: true, isNewUser: boolean, isLinked: boolean, token: string }
  | { claimed: false, refusal: Refusal }

/** The answer to a link: its generation, or why it was refused. */
export type LinkResult =
  | { linked: true, generation: number }
  | { linked: false, refusal: Refusal }

/** The limits a claim and a link are checked against, as the node that makes them has them. */
export interface Admission {
  acceptNewUsers: boolean
  maxUsers: number
  /** Whether a link may create its room. */
  acceptNewRooms: boolean
  /** The most rooms; a link or a join that would create one more is refused. */
  maxRooms: number
}

/** One user of a snapshot of the user space, in join order. */
export interface SnapshotUser {
  username: string
  /** Where the user is in join order. */
  order: number
  /** The link of a linked user. */
  link: { node: string, generation: number } | undefined
  /** The JSON of its data, if any. */
  data: string | undefined
}

/** What the link server gives its backend: where changes, snapshots and messages from other nodes go. */
export interface BackendSink {
  /**
   * A change committed by any node, in the order of the user space; called synchronously by the in-memory backend.
   * Answers `false`, and changes nothing, for a change that does not fit the user space (the unlink of a user that
   * is not linked, the join of one that exists, the leave of one that does not): only a foreign writer makes one.
   */
  apply (change: Change): boolean
  /**
   * The user space as it is (after a lost Redis, a node that fell behind the log, or at start); the mirror
   * is set to it and the differences sent to this node's connections, with no events. With `keepMissing`,
   * users the snapshot lacks are kept (Redis lost its data, and their nodes have not registered them yet).
   */
  reset (users: SnapshotUser[], keepMissing: boolean): void
  /**
   * A message for `username`, if it is linked to this node: sent by another node with `send`, or, with replay
   * on, by any node. `number` is its number among the messages addressed to the user (`0` with replay off):
   * one this node sent the user already (in a replay) is not sent again.
   */
  deliver (username: string, frame: EncodedFrame, number: number): void
  /** A frame for every linked user of this node but `skip`: a broadcast of this node or another. */
  broadcast (frame: EncodedFrame, skip: string | undefined): void
  /** The users linked to this node by open connections, for a backend that lost its data to register them again. */
  linkedHere (): LinkedHere[]
  /**
   * The mirror, read only: the users as the changes applied so far made them. The in-memory store keeps no copy
   * of its own: in one process, the mirror is the user space.
   */
  readonly users: UserView
}

/** The users of the mirror, read only. */
export interface UserView {
  readonly size: number
  get (username: string): { readonly link: { readonly generation: number } | undefined } | undefined
  /** Every user in join order. */
  usernames (): string[]
}

/** A user linked to this node: its link and its place in join order. */
export interface LinkedHere {
  username: string
  generation: number
  order: number
  data: string | undefined
  /** The number of the last message sent to it (replay on). */
  sent: number
}

/**
 * A commit that resolves when its change is applied on this node (at once on the in-memory backend),
 * or rejects with a coded error when the backend refused it.
 */
export type Commit = Promise<void>

/**
 * The store of the user space: it decides every change (claims, links, joins, unlinks, leaves) and hands it back,
 * in the one order of the user space, to the `apply` of every node; with replay on, it keeps and numbers the
 * messages of every user until they are confirmed.
 */
export interface Store {
  /** Reserves `username` for one pending link, if it is free and may link. */
  claim (username: string, admission: Admission): Promise<ClaimResult>
  /** Gives up a claim that did not become a link. */
  release (username: string, token: string): void
  /**
   * Links a claimed user to a connection of this node, attaching `data` (JSON) to it; a linked user is taken
   * over when the claim said so (`isLinked`), in one step: its old link's unlink, then this link.
   */
  link (username: string, token: string, admission: Admission, data: string | undefined): LinkResult | Promise<LinkResult>
  /** Creates `username`, unlinked, and the room with it if need be; refused with `exists`, `full` or `too-many-rooms`. */
  join (username: string, admission: Admission): Commit
  /**
   * Unlinks `username`: the link of `generation`, or whatever link it has when `generation` is undefined
   * (rejects with `FST_LINK_USER_NOT_LINKED` if none). A fenced unlink of a link that ended does nothing.
   */
  unlink (username: string, generation: number | undefined, cause: UnlinkCause): Commit
  /** Makes `username` leave, unlinked first; rejects with `FST_LINK_UNKNOWN_USER` when it does not exist. */
  leave (username: string, cause: LeaveCause): Commit
  /**
   * With replay on: keeps a message for `username`, or for every user but `skip` when `username` is
   * undefined, numbered per user, and delivers it to those linked (through `BackendSink.deliver`).
   */
  post (username: string | undefined, skip: string | undefined, frame: EncodedFrame): void
  /** With replay on: the link `generation` of `username` confirmed every message up to `number`: they are not replayed. */
  confirm (username: string, generation: number, number: number): void
}

/**
 * The message bus, with replay off: what the application sends reaches the users linked to any node. A broadcast
 * reaches this node's users through the same sink as another node's (`BackendSink.broadcast`), at once.
 */
export interface Bus {
  /** Sends a frame to `username`, linked to `node`. */
  deliver (node: string, username: string, frame: EncodedFrame): void
  /** Sends a frame to every linked user of every node, this one's at once, but `skip`. */
  broadcast (frame: EncodedFrame, skip: string | undefined): void
}

/** One room's part of a backend: its store, and the bus of its messages. */
export interface RoomBackend {
  readonly store: Store
  readonly bus: Bus
  /** Resolves when this node serves the room, its user space loaded (at once in memory); rejects when it cannot now. */
  serve: () => Promise<void>
  /** Whether this node serves the room, its user space loaded. */
  readonly loaded: boolean
}

/** What a backend asks of the link server for all rooms. */
export interface RoomHost {
  /** A shared backend's heartbeat found rooms no node serves that need a node (a dead node's, or a window that ends): serve them a while. */
  serve: (names: string[]) => void
  /** With metrics on: how long a round trip to a shared store took, by the script it ran. */
  roundTrip?: (script: string, seconds: number) => void
}

/**
 * Where the user spaces are held: this process (`memory.ts`), or a Redis shared by many nodes (`redis.ts`). Each room
 * is a user space of its own (with rooms off, the endpoint is one room, named `''`).
 */
export interface Backend {
  /** This node's id, the `origin` of the changes it makes. */
  readonly nodeId: string
  /** How many nodes share the user space, as this node last saw (1 for the in-memory backend). */
  readonly nodes: number
  /** A shared backend: what it read and refused (publications of other nodes, records of its log), by kind. */
  readonly refusedInputs?: Readonly<Record<'publication' | 'record', number>>
  /** Whether the store of the user space answers (always, for the in-memory backend). */
  readonly isAvailable: boolean
  /**
   * Whether the rooms outlive this node's serving them (a shared backend): a room this node stops serving, or has not
   * loaded, may have users; the in-memory backend's rooms are what this node serves.
   */
  readonly keepsRooms: boolean
  /** A shared backend: the rooms that exist in the whole cluster, sorted. */
  roomNames?: () => Promise<string[]>
  /** This node serves the room `name` (it has connections in it, or its API was called): its changes go to `sink`. */
  open (name: string, sink: BackendSink): RoomBackend
  /** This node no longer serves the room `name`: nothing of it is kept here. */
  close (name: string): void
  /** Connects, and gives the sinks of the rooms open already their user spaces; rejects with a coded error when the store cannot be reached. */
  start (host: RoomHost): Promise<void>
  /**
   * This node closes: the in-memory backend makes every user of every room leave, in join order; a shared backend unlinks the
   * users linked to this node, whose user space outlives it. The caller awaits it before it closes its sockets,
   * so that they hear of it; its changes have the cause `close`.
   */
  closeNode (): Promise<void>
  /** Stops, after `closeNode`. */
  stop (): Promise<void>
}

/** Why a commit was refused; the link server turns it into the coded error of the method that asked. */
export type CommitRefusal = 'exists' | 'full' | 'too-many-rooms' | 'unknown' | 'not-linked' | 'unavailable'

/** The rejection of a refused commit. */
export class CommitRefused extends Error {
  readonly refusal: CommitRefusal
  constructor (refusal: CommitRefusal, detail?: string) {
    super(detail ?? refusal)
    this.refusal = refusal
  }
}
