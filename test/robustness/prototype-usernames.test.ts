import t from 'tap'
import { build } from '../helpers/app.js'
import { inject } from '../helpers/clients.js'
import { frames } from '../helpers/frames.js'

t.test('usernames that are Object.prototype keys are ordinary new users', async t => {
  const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']
  const app = await build(t, { isValidUsername: () => true })
  const users = []
  for (const name of names) {
    const client = await inject(app)
    client.requestLink(name)
    t.strictSame((await client.take(1))[0], frames.accepted, `${name} is accepted`)
    users.push(client)
  }
  t.strictSame(app.linkServer.getUsers(), names.map(username => ({ username, isLinked: true })))
  t.equal(({} as Record<string, unknown>).isLinked, undefined, 'Object.prototype is not polluted')
  await app.linkServer.kick('__proto__')
  t.strictSame(app.linkServer.getUsers().map(user => user.username), ['constructor', 'toString', 'hasOwnProperty', 'valueOf'])
})
