import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { readmeSnippets, root } from '../helpers/readme-snippets.js'

const run = promisify(execFile)

// A build, a pack and an install from the npm cache take longer than the suite's 60 s per file.
t.setTimeout(240_000)
t.before(async () => { await run('npm', ['run', 'build'], { cwd: root }) })

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
  for (const file of ['dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/esm/testing.d.ts', 'dist/cjs/testing.js']) {
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
  const kit = 'typeof kit.linkUser, typeof kit.LinkTestClient, typeof kit.LinkRejectedError, kit.testClientVersion'
  const requiredKit = await run(process.execPath, ['-e', `const kit = require('fastify-link-server/testing'); console.log(${kit})`], { cwd: root })
  const importedKit = await run(process.execPath, ['--input-type=module', '-e', `import * as kit from 'fastify-link-server/testing'; console.log(${kit})`], { cwd: root })
  t.strictSame([requiredKit.stdout, importedKit.stdout], ['function function function 0.6.10\n', 'function function function 0.6.10\n'],
    'the test kit is the second export, both ways')
})

/** The version of `name` this repository installed, so that the scratch application gets the same. */
function installed (name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

t.test("the packed package type-checks the README's snippets in an application of its own (strict, skipLibCheck false)", async t => {
  const scratch = mkdtempSync(join(tmpdir(), 'fastify-link-server-app-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', scratch], { cwd: root }) // built before
  const tarball = join(scratch, stdout.trim().split('\n').at(-1) as string)
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }))
  // The application declares what it imports itself; @fastify/websocket comes only as the plugin's dependency.
  const dependencies = ['fastify', '@sinclair/typebox', '@fastify/jwt', '@krmx/client', 'ws', '@types/ws', '@types/node']
    .map(name => `${name}@${installed(name)}`)
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball, ...dependencies], { cwd: scratch })
  const snippets = readmeSnippets()
  for (const snippet of snippets) {
    writeFileSync(join(scratch, snippet.kind === 'file' ? basename(snippet.name) : snippet.name), snippet.code)
  }
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const compile = async (files: string[], skipLibCheck = false) => {
    const project = join(scratch, 'tsconfig.json')
    writeFileSync(project, JSON.stringify({
      compilerOptions: { strict: true, skipLibCheck, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: ['node'] },
      files
    }))
    try {
      await run(process.execPath, [tsc, '-p', project], { cwd: scratch })
      return ''
    } catch (error) {
      return (error as { stdout: string }).stdout
    }
  }
  const files = snippets.map(snippet => snippet.kind === 'file' ? basename(snippet.name) : snippet.name)
  // own-websocket.ts imports @fastify/websocket itself, which would bring its types to every file of one
  // program; client.ts imports @krmx/client, whose @krmx/base declarations fail skipLibCheck: false on
  // their own (event-generator.d.ts, TS2416), so it is checked with the libraries' declarations skipped.
  const alone = ['own-websocket.ts', 'client.ts']
  t.equal(await compile(files.filter(file => !alone.includes(file))), '', 'the snippets that do not import @fastify/websocket')
  t.equal(await compile(['own-websocket.ts']), '', 'the snippet that registers its own @fastify/websocket')
  t.equal(await compile(['client.ts'], true), '', 'the client')
})
