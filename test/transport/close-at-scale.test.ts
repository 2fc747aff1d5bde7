import t from 'tap'
import { clientFrame, RawClient } from '../../support/raw-client.js'
import { build } from '../helpers/app.js'
import { next, record } from '../helpers/events.js'
import { version } from '../helpers/frames.js'
import { eventually, nextMacrotask } from '../helpers/waits.js'

// 10,000 users (the default maxUsers), of which 200 are linked over real loopback sockets. Before, the
// close queued every user's unlinked and left frames to every connection (O(users × connections), here
// 4 million frames held in memory before the first byte left); now each connection hears of its own
// user only. perf/bench/close.ts measures the time and the heap at 2,000 linked and more.
const users = 10_000
const linked = 200

interface Recorder { client: RawClient, count: number, frames: unknown[], closed: Promise<[number, string]>, recording: boolean }

t.test(`close with ${users} users, ${linked} of them linked: each connection gets its own two goodbye frames, then 1001`, async t => {
  const app = await build(t, { listen: true, rateLimit: false })
  const { port } = app.server.address() as { port: number }
  const recorders: Recorder[] = []
  for (let index = 0; index < linked; index++) {
    const client = await RawClient.open(port)
    const recorder: Recorder = {
      client,
      count: 0,
      frames: [],
      closed: new Promise(resolve => { client.onClose = (code, reason) => resolve([code, reason]) }),
      recording: false
    }
    client.onFrame = payload => {
      recorder.count++
      if (recorder.recording) {
        recorder.frames.push(JSON.parse(payload.toString()))
      }
    }
    const accepted = next(app, 'link')
    client.send(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username: `linked${index}`, version } })))
    await accepted
    recorders.push(recorder)
  }
  for (let index = linked; index < users; index++) {
    await app.linkServer.join(`user${index}`)
    if (index % 500 === 0) {
      await nextMacrotask() // lets each batch's frames leave before the next is made
    }
  }
  // Linking the i-th user sends it 1 + 2(i + 1) frames and 2 to each of the i before; then one krmx/joined per joined user.
  const expected = (index: number) => 1 + 2 * (index + 1) + 2 * (linked - 1 - index) + (users - linked)
  await eventually(() => recorders.every((recorder, index) => recorder.count === expected(index)),
    () => JSON.stringify(recorders.map((recorder, index) => [recorder.count, expected(index)]).filter(([got, want]) => got !== want).slice(0, 5)))
  for (const recorder of recorders) {
    recorder.recording = true
  }
  const events = record(app)
  t.equal(app.linkServer.getStats().users, users)

  await app.close()
  const closes = await Promise.all(recorders.map(recorder => recorder.closed))
  t.strictSame(closes, Array(linked).fill([1001, 'server closing']))
  t.strictSame(recorders.map(recorder => recorder.frames), recorders.map((_recorder, index) => [
    { type: 'krmx/unlinked', payload: { username: `linked${index}` } },
    { type: 'krmx/left', payload: { username: `linked${index}` } }
  ]))
  const expectedEvents = []
  for (let index = 0; index < users; index++) {
    if (index < linked) {
      expectedEvents.push(['unlink', `linked${index}`], ['leave', `linked${index}`])
    } else {
      expectedEvents.push(['leave', `user${index}`])
    }
  }
  t.strictSame(events, [...expectedEvents, ['close']])
  t.strictSame(app.linkServer.getUsers(), [])
  for (const recorder of recorders) {
    recorder.client.close()
  }
})
