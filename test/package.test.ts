import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = join(import.meta.dirname, '..')

const program = (load: string): string => `
${load}
const app = Fastify()
await app.register(plugin, { pingIntervalMilliseconds: 0 })
await app.ready()
app.linkServer.join('alice')
console.log(JSON.stringify({
  sameNamed: plugin === named,
  status: app.linkServer.getStatus(),
  users: app.linkServer.getUsers(),
  regex: usernameRegex.source
}))
await app.close()
`

t.test('after a build, plain Node can require and import the package by name', async t => {
  await run('npm', ['run', 'build'], { cwd: root })
  for (const file of ['dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/esm/index.js', 'dist/esm/index.d.ts']) {
    t.ok(existsSync(join(root, file)), `${file} is built`)
  }
  const expected = {
    sameNamed: true,
    status: 'listening',
    users: [{ username: 'alice', isLinked: false }],
    regex: '^[a-zA-Z](?!.*[._@-]{2})[a-zA-Z0-9._@-]{0,30}[a-zA-Z0-9]$'
  }
  const cjs = program(`
const { default: plugin, fastifyLinkServer: named, usernameRegex } = require('fastify-link-server')
const Fastify = require('fastify')
;(async () => {`) + '})()'
  const esm = program(`
import plugin, { fastifyLinkServer as named, usernameRegex } from 'fastify-link-server'
import Fastify from 'fastify'`)
  const required = await run(process.execPath, ['-e', cjs], { cwd: root })
  t.strictSame(JSON.parse(required.stdout), expected, 'require')
  const imported = await run(process.execPath, ['--input-type=module', '-e', esm], { cwd: root })
  t.strictSame(JSON.parse(imported.stdout), expected, 'import')
  const registered = await run(process.execPath, ['-e', `
const Fastify = require('fastify')
const app = Fastify()
app.register(require('fastify-link-server')).ready().then(() => {
  console.log(app.linkServer.getStatus())
  return app.close()
})`], { cwd: root })
  t.equal(registered.stdout, 'listening\n', 'the CommonJS module itself can be given to register')
})
