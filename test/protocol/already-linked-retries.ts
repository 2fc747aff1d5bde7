import t from 'tap'
import { connect, inject, unresponsive } from '../helpers/clients.js'
import { next } from '../helpers/events.js'
import { frames, version } from '../helpers/frames.js'
import { clientFrame } from '../../support/raw-client.js'
import type { TestBackend } from '../helpers/app.js'

/** The already-linked-retries tests, on `backend`. */
export default function suite ({ build }: TestBackend): void {
  t.test('already linked rejections do not count towards maxLinkAttempts: a client may retry until a half-open connection is cut', async t => {
    const app = await build(t, { listen: true, maxLinkAttempts: 2, pingIntervalMilliseconds: 100, rateLimit: false })
    const port = (app.server.address() as { port: number }).port
    const halfOpen = await unresponsive(port) // never answers a ping, like a phone that lost its network
    const halfOpenLinked = next(app, 'link')
    halfOpen.write(clientFrame(JSON.stringify({ type: 'krmx/link', payload: { username: 'alice', version } })))
    t.strictSame(await halfOpenLinked, ['alice', { data: undefined, replay: undefined }])
    const retrying = await connect(app)
    const reason = 'user alice is already linked to a connection'
    const answers = []
    for (let attempt = 0; attempt < 100_000; attempt++) {
      retrying.requestLink('alice')
      const [frame] = await retrying.take(1)
      if (frame.type === 'krmx/accepted') {
        break
      }
      answers.push(frame)
    }
    t.ok(answers.length > 2, `rejected ${answers.length} times, more than maxLinkAttempts, and still open`)
    t.strictSame(answers, Array(answers.length).fill(frames.rejected(reason)))
    t.strictSame(await retrying.take(2), [frames.joined('alice'), frames.linked('alice')])
    halfOpen.destroy()
  })

  t.test('other rejections still count', async t => {
    const app = await build(t, { listen: true, maxLinkAttempts: 2 })
    app.linkServer.on('authenticate', (_username, _info, reject) => reject('no'))
    const client = await inject(app)
    const closed = client.closed()
    client.requestLink('alice')
    client.requestLink('alice')
    t.strictSame(await client.take(2), [frames.rejected('no'), frames.rejected('no')])
    t.strictSame(await closed, { code: 1008, reason: 'too many rejected link requests' })
  })
}
