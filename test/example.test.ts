import t from 'tap'
import { buildExample } from '../example/app.js'
import { Client, frames } from './helper.js'

t.test('the example chat server logs every event and relays chat/say to everyone', async t => {
  const logs: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { logs.push(JSON.parse(line)) } }
  const app = await buildExample({ logger: { stream } })
  await app.ready()
  const admin = new Client(await app.injectWS('/'))
  const alice = new Client(await app.injectWS('/'))
  t.teardown(async () => {
    admin.ws.terminate()
    alice.ws.terminate()
    await app.close()
  })
  admin.link('admin')
  t.strictSame(await admin.take(1), [frames.rejected('admin is reserved')])
  await alice.linked('alice', 3)
  alice.send({ type: 'chat/say', payload: 'hello' })
  t.strictSame(await alice.take(1), [{ type: 'chat/said', payload: { from: 'alice', text: 'hello' } }])
  alice.send({ type: 'krmx/leave' })
  await alice.take(2)
  const appLogs = logs.filter(log => log.name === undefined && log.username !== undefined)
  t.strictSame(appLogs.map(({ msg, username }) => [msg, username]), [
    ['authenticating', 'admin'],
    ['authenticating', 'alice'],
    ['join', 'alice'],
    ['link', 'alice'],
    ['message', 'alice'],
    ['unlink', 'alice'],
    ['leave', 'alice']
  ])
})
