import t from 'tap'
import { build } from '../helpers/app.js'
import { connect, type Received } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'

t.test('the broadcasts of a turn go to each socket as one slice of a shared buffer: past its end, beside larger frames, skips and sends, every socket gets its own frames whole and in order', async t => {
  const app = await build(t, { listen: true })
  const alice = await connect(app)
  await alice.linked('alice', 3)
  const bob = await connect(app)
  await bob.linked('bob', 5)
  t.strictSame(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
  const expected: Record<'alice' | 'bob', Received[]> = { alice: [], bob: [] }
  // In one turn: about 200 KiB of broadcasts, three times the 64 KiB shared buffer.
  for (let i = 0; i < 400; i++) {
    const frame = { type: 'tick', payload: `${i}:${'x'.repeat(500)}` }
    if (i % 30 === 7) {
      app.linkServer.broadcast(frame, 'bob')
      expected.alice.push(frame)
    } else {
      app.linkServer.broadcast(frame)
      expected.alice.push(frame)
      expected.bob.push(frame)
    }
    if (i % 20 === 3) {
      const own = { type: 'own', payload: i }
      app.linkServer.send('alice', own)
      expected.alice.push(own)
    }
    if (i % 100 === 50) {
      const large = { type: 'large', payload: 'y'.repeat(10_000 + i) } // larger than what is copied: shared as it is
      app.linkServer.broadcast(large)
      expected.alice.push(large)
      expected.bob.push(large)
    }
  }
  t.strictSame(await alice.take(expected.alice.length), expected.alice)
  t.strictSame(await bob.take(expected.bob.length), expected.bob)
  t.strictSame(await alice.settle(), [])
  t.strictSame(await bob.settle(), [])
})

t.test('broadcasts in the turns after a full shared buffer start in a new one; what a socket was handed is never written again', async t => {
  const app = await build(t, { listen: true })
  const alice = await connect(app)
  await alice.linked('alice', 3)
  const sent: Received[] = []
  for (let turn = 0; turn < 5; turn++) {
    for (let i = 0; i < 40; i++) {
      const frame = { type: 'tick', payload: `${turn}/${i}:${'z'.repeat(1_000)}` }
      app.linkServer.broadcast(frame)
      sent.push(frame)
    }
    await new Promise(resolve => setImmediate(resolve))
  }
  t.strictSame(await alice.take(sent.length), sent)
  t.strictSame(await alice.settle(), [])
})
