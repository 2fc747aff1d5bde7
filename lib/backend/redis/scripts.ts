import {
  claimScript,
  expireScript,
  joinScript,
  leaveScript,
  linkScript,
  postScript,
  releaseScript,
  unlinkScript,
  windowsScript
} from './lua-changes.js'
import { deregisterScript, healScript, heartbeatScript, registerScript, snapshotScript } from './lua-node.js'
import { admitRoomScript, dropRoomScript, nodeBeatScript, nodeDeregisterScript, nodeRegisterScript, serveScript, unserveScript } from './lua-rooms.js'

/**
 * The Lua scripts of the Redis backend, by the name each is defined as on the commands connection: the changes of
 * the user space (`lua-changes.ts`) and the node's own (`lua-node.ts`), on the prelude they share (`lua-prelude.ts`);
 * with rooms on, the node's scripts under the namespace's tag (`lua-rooms.ts`).
 */
export const scripts = {
  claim: claimScript,
  release: releaseScript,
  link: linkScript,
  join: joinScript,
  unlink: unlinkScript,
  leave: leaveScript,
  heartbeat: heartbeatScript,
  register: registerScript,
  snapshot: snapshotScript,
  deregister: deregisterScript,
  post: postScript,
  expire: expireScript,
  windows: windowsScript,
  heal: healScript,
  nodeRegister: nodeRegisterScript,
  nodeBeat: nodeBeatScript,
  serve: serveScript,
  unserve: unserveScript,
  admitRoom: admitRoomScript,
  dropRoom: dropRoomScript,
  nodeDeregister: nodeDeregisterScript
} as const

export type ScriptName = keyof typeof scripts

export { claimScript, leaveScript, linkScript, unlinkScript }
