import t from 'tap'
import { build, inject, frames } from './helper.js'

t.test('smoke', async t => {
  const app = await build(t)
  const alice = await inject(app)
  t.same(await alice.linked('alice', 3), [frames.accepted, frames.joined('alice'), frames.linked('alice')])
  const bob = await inject(app)
  t.same(await bob.linked('bob', 5), [frames.accepted, frames.joined('alice'), frames.linked('alice'), frames.joined('bob'), frames.linked('bob')])
  t.same(await alice.take(2), [frames.joined('bob'), frames.linked('bob')])
})
