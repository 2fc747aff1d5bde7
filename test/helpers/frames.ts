import { testClientVersion } from '../../testing.js'

/** The Krmx client version the tests link with. */
export const version = testClientVersion

/** The protocol's frames, as a client receives them. */
export const frames = {
  accepted: { type: 'krmx/accepted' },
  rejected: (reason: string) => ({ type: 'krmx/rejected', payload: { reason } }),
  joined: (username: string) => ({ type: 'krmx/joined', payload: { username } }),
  linked: (username: string) => ({ type: 'krmx/linked', payload: { username } }),
  unlinked: (username: string) => ({ type: 'krmx/unlinked', payload: { username } }),
  left: (username: string) => ({ type: 'krmx/left', payload: { username } })
}
