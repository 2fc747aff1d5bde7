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

t.test('a message whose own toJSON does not make a frame throws FST_LINK_UNENCODABLE_MESSAGE; one that makes a frame is sent as it makes it', async t => {
  const { app, alice } = await linkedPair(t)
  for (const made of ['a string', undefined, {}, { payload: 1 }, [1], null]) {
    const message = { type: 'doc/state', toJSON: () => made }
    for (const [action, call] of [
      ['send', () => app.linkServer.send('alice', message)],
      ['broadcast', () => app.linkServer.broadcast(message)]
    ] as const) {
      t.strictSame(pick(thrownBy(call)), {
        code: 'FST_LINK_UNENCODABLE_MESSAGE',
        message: `Cannot ${action} a message of type "doc/state": JSON cannot encode it (its toJSON does not make a { type, payload? } object)`
      }, `${action}, its toJSON making ${JSON.stringify(made) ?? 'undefined'}`)
    }
  }
  const framed = { type: 'doc/state', toJSON: () => ({ type: 'doc/state', payload: 'as made' }) }
  app.linkServer.send('alice', framed)
  t.strictSame(await alice.settle(), [{ type: 'doc/state', payload: 'as made' }])
})

function pick (error: Error & { code?: string }): { code?: string, message: string } {
  return { code: error.code, message: error.message }
}
