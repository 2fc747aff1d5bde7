import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import type { BackendSink } from '../../lib/backend/backend.js'
import { Mailbox } from '../../lib/backend/mailbox.js'
import { MemoryBackend } from '../../lib/backend/memory.js'
import { Mirror } from '../../lib/space/mirror.js'
import { encodeText } from '../../lib/frames.js'

// The in-memory backend's buffer of one user, alone: numbering, confirmation, the two bounds and the count of what they dropped.
const frame = (text: string): ReturnType<typeof encodeText> => encodeText(JSON.stringify({ type: 'note/say', payload: text }))
const texts = (mailbox: Mailbox, now: number, maxAge: number): { messages: string[], lost: number, head: number } => {
  const { messages, lost, head } = mailbox.replay(now, maxAge)
  return { messages: messages.map(message => JSON.parse(message.payload.toString()).payload), lost, head }
}

t.test('messages are numbered from 1; a confirmation drops what it names, once; an older or repeated one does nothing', async t => {
  const mailbox = new Mailbox()
  t.strictSame(['a', 'b', 'c', 'd'].map(text => mailbox.add(frame(text), 0, 10, 1_000)), [1, 2, 3, 4])
  mailbox.confirm(2)
  t.strictSame(texts(mailbox, 0, 1_000), { messages: ['c', 'd'], lost: 0, head: 4 })
  mailbox.confirm(2)
  mailbox.confirm(1)
  t.strictSame(texts(mailbox, 0, 1_000), { messages: ['c', 'd'], lost: 0, head: 4 }, 'nothing more dropped')
  mailbox.confirm(4)
  t.strictSame(texts(mailbox, 0, 1_000), { messages: [], lost: 0, head: 4 })
})

t.test('maxMessages and maxAgeMilliseconds drop the oldest; what they dropped unconfirmed is lost, what was confirmed after is not', async t => {
  const mailbox = new Mailbox()
  for (const [index, text] of ['a', 'b', 'c', 'd', 'e'].entries()) {
    mailbox.add(frame(text), index * 100, 3, 1_000)
  }
  t.strictSame(texts(mailbox, 400, 1_000), { messages: ['c', 'd', 'e'], lost: 2, head: 5 })
  t.strictSame(texts(mailbox, 1_250, 1_000), { messages: ['d', 'e'], lost: 3, head: 5 }, 'c is older than 1 s at 1,250 ms')
  mailbox.confirm(3)
  t.strictSame(texts(mailbox, 1_250, 1_000), { messages: ['d', 'e'], lost: 0, head: 5 }, 'a, b and c reached the user after all')
})

t.test('a long run of messages, confirmed as they go, keeps only what is unconfirmed and numbers on', async t => {
  const mailbox = new Mailbox()
  for (let number = 1; number <= 1_000; number++) {
    if (mailbox.add(frame(String(number)), number, 100, 60_000) !== number) t.fail(`message ${number} was numbered wrongly`)
    if (number % 10 === 0) {
      mailbox.confirm(number - 3)
    }
  }
  t.strictSame(texts(mailbox, 1_000, 60_000), { messages: ['998', '999', '1000'], lost: 0, head: 1_000 })
  for (let number = 1_001; number <= 1_200; number++) {
    mailbox.add(frame(String(number)), number, 100, 60_000)
  }
  const { messages, lost } = texts(mailbox, 1_200, 60_000)
  t.strictSame([messages.length, messages[0], messages[99], lost], [100, '1101', '1200', 103])
})

t.test('the in-memory backend drops the messages of users that never come back once older than maxAge, a quarter of it late at most', async t => {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval', 'performance'] })
  t.teardown(() => clock.uninstall())
  const backend = new MemoryBackend({ windowMilliseconds: 0, replay: { maxMessages: 100, maxAgeMilliseconds: 500 }, takeover: false })
  const users = new Mirror()
  const sink: BackendSink = { apply: change => { if (change.op === 'join') users.join(change.username, change.order); else users.leave(change.username); return true }, reset: () => {}, deliver: () => {}, broadcast: () => {}, linkedHere: () => [], users }
  const { store } = backend.open('', sink)
  await backend.start()
  for (let user = 0; user < 100; user++) {
    await store.join(`user${user}`, { acceptNewUsers: true, maxUsers: 1_000, acceptNewRooms: true, maxRooms: 1 })
  }
  for (let message = 0; message < 10; message++) {
    store.post(undefined, undefined, frame(`line ${message}`))
  }
  t.equal(backend.keptMessages, 1_000, '10 messages for each of 100 unlinked users')
  clock.tick(400) // sweeps at 125, 250 and 375 ms: nothing is older than 500 ms yet
  t.equal(backend.keptMessages, 1_000)
  store.post('user0', undefined, frame('later'))
  clock.tick(225) // the sweep at 625 ms drops what is older than 500 ms: all but the later line
  t.equal(backend.keptMessages, 1, 'what is past its age is dropped by the sweep, without a link or a new message')
  await store.leave('user0', 'kick')
  t.equal(backend.keptMessages, 0, 'a user that leaves takes its messages with it')
  await backend.stop()
  t.equal(clock.countTimers(), 0, 'the sweep stops with the backend')
})
