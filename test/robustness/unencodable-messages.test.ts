import t from 'tap'
import { linkedPair } from '../helpers/app.js'

function thrownBy (call: () => void): Error & { code?: string } {
  try {
    call()
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error('it did not throw')
}

t.test('send and broadcast of a message JSON cannot encode throw FST_LINK_UNENCODABLE_MESSAGE, and send nothing', async t => {
  const { app, alice, bob } = await linkedPair(t)
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  const cases: Array<[unknown, string]> = [
    [10n, 'Do not know how to serialize a BigInt'],
    [{ nested: [1, 2n] }, 'Do not know how to serialize a BigInt'],
    [{ toJSON: () => { throw new Error('toJSON failed') } }, 'toJSON failed'],
    // eslint-disable-next-line no-throw-literal
    [{ toJSON: () => { throw 'not an Error' } }, 'a toJSON method threw']
  ]
  for (const [payload, cause] of cases) {
    for (const [action, call] of [
      ['send', () => app.linkServer.send('alice', { type: 'doc/state', payload })],
      ['broadcast', () => app.linkServer.broadcast({ type: 'doc/state', payload })]
    ] as const) {
      const error = thrownBy(call)
      t.ok(error instanceof TypeError, 'a TypeError')
      t.strictSame({ code: error.code, message: error.message }, {
        code: 'FST_LINK_UNENCODABLE_MESSAGE',
        message: `Cannot ${action} a message of type "doc/state": JSON cannot encode it (${cause})`
      })
    }
  }
  t.throws(() => app.linkServer.send('alice', { type: 'doc/state', payload: cycle }), {
    code: 'FST_LINK_UNENCODABLE_MESSAGE',
    message: /^Cannot send a message of type "doc\/state": JSON cannot encode it \(Converting circular structure to JSON/
  })
  t.strictSame([await alice.settle(), await bob.settle()], [[], []])
})
