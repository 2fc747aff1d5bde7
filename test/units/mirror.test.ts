import t from 'tap'
import { Mirror } from '../../lib/space/mirror.js'

/** The frames of a user list, as the texts a client reads. */
function texts (bytes: Buffer): string[] {
  const frames: string[] = []
  for (let offset = 0; offset < bytes.length;) {
    const length = bytes[offset + 1]
    frames.push(bytes.toString('utf8', offset + 2, offset + 2 + length))
    offset += 2 + length
  }
  return frames
}
const joined = (username: string): string => JSON.stringify({ type: 'krmx/joined', payload: { username } })
const linked = (username: string): string => JSON.stringify({ type: 'krmx/linked', payload: { username } })

t.test('the user list is one buffer that joins extend, shared by the links in between, and made again after a listed user changes', async t => {
  const space = new Mirror()
  const link = { node: 'n', generation: 1 }
  space.setLink(space.join('alice', 1), link)
  const first = space.list()
  t.strictSame([texts(first.bytes), first.frames], [[joined('alice'), linked('alice')], 2])

  // A storm: bob joins and links, carol only joins; the list grows in place and what was handed out stays as it was.
  space.setLink(space.join('bob', 2), { node: 'n', generation: 2 })
  space.join('carol', 3)
  const second = space.list()
  t.strictSame([texts(second.bytes), second.frames], [[joined('alice'), linked('alice'), joined('bob'), linked('bob'), joined('carol')], 5])
  t.equal(second.bytes.buffer, first.bytes.buffer, 'the same buffer, extended')
  t.strictSame(texts(first.bytes), [joined('alice'), linked('alice')])
  t.strictSame(texts(space.list().bytes), texts(second.bytes), 'nothing changed: the same list')

  // carol, in the list unlinked, links: the list is made again, in a new buffer.
  space.setLink(space.get('carol') as never, { node: 'n', generation: 3 })
  const third = space.list()
  t.strictSame(texts(third.bytes), [joined('alice'), linked('alice'), joined('bob'), linked('bob'), joined('carol'), linked('carol')])
  t.not(third.bytes.buffer, second.bytes.buffer)
  t.strictSame(texts(second.bytes), [joined('alice'), linked('alice'), joined('bob'), linked('bob'), joined('carol')], 'what was handed out is never written again')

  // An unlink and a leave make it again too; a user that joined and left between two lists is in neither.
  space.setLink(space.get('alice') as never, undefined)
  space.join('dave', 4)
  space.leave('bob')
  space.leave('dave')
  const fourth = space.list()
  t.strictSame([texts(fourth.bytes), fourth.frames], [[joined('alice'), joined('carol'), linked('carol')], 3])

  // Joins past the buffer's room move the list to a bigger one, whole.
  const names = Array.from({ length: 200 }, (_, index) => `user-with-a-long-name-${index}`)
  for (const [index, name] of names.entries()) {
    space.join(name, 5 + index)
    space.list()
  }
  const fifth = space.list()
  t.strictSame([texts(fifth.bytes), fifth.frames], [[joined('alice'), joined('carol'), linked('carol'), ...names.map(joined)], 203])
  const expected = [joined('alice'), joined('carol'), linked('carol'), ...names.map(joined)].reduce((sum, text) => sum + 2 + text.length, 0)
  t.strictSame([fifth.bytes.length > 4096, fifth.bytes.length, fifth.bytes.buffer === fourth.bytes.buffer], [true, expected, false], 'past the first buffer\'s room')

  // Sorting (after a snapshot) makes it again, in the new order.
  space.sort()
  t.strictSame(texts(space.list().bytes).slice(0, 3), [joined('alice'), joined('carol'), linked('carol')])
})

t.test('the first list is made from every user when it is first asked for', async t => {
  const space = new Mirror()
  for (let index = 0; index < 3; index++) {
    space.join(`u${index}`, index)
  }
  t.strictSame(texts(space.list().bytes), [joined('u0'), joined('u1'), joined('u2')])
})
