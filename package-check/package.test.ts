import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import t from 'tap'
import { readmeSnippets, root } from '../test/helpers/readme-snippets.js'
import { RedisServer } from '../test/helpers/redis-server.js'
import { clusterApp, minimalApp, strictConfig } from './apps.js'

// The package as a user installs it today: packed from a clean clone of this repository (HEAD, not the work
// tree), installed into a new application without a lockfile, so that every dependency is the newest our
// ranges allow, with the newest ioredis and TypeScript beside it. It needs the npm registry, so it is not part
// of npm test: npm run test:package (.ci/run runs it after npm test).

const run = promisify(execFile)
// Every program runs as a user runs it: without the loaders that tap adds to the NODE_OPTIONS of the processes
// this test starts (env -u takes them out after tap's spawn wrapper put them in).
const exec = async (file: string, args: string[], options: { cwd: string, env?: Record<string, string> }) =>
  run('env', ['-u', 'NODE_OPTIONS', file, ...args], { maxBuffer: 1 << 26, ...options, env: { ...process.env, ...options.env } })
const npm = async (cwd: string, ...args: string[]) => exec('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd })

const scratch = mkdtempSync(join(tmpdir(), 'fastify-link-server-package-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const clone = join(scratch, 'clone')
const app = join(scratch, 'app')

/** The version of `name` installed in the application. */
function installed (name: string): string {
  return (JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

/**
 * Type-checks the application's `files` (strict, skipLibCheck false) with its own TypeScript, and emits them to
 * out/; answers what tsc printed (nothing when it passed), and its exit code when it failed.
 */
async function compile (files: string[]): Promise<string> {
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ ...strictConfig, files }))
  try {
    const { stdout, stderr } = await exec(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app })
    return stdout + stderr
  } catch (error) {
    const { stdout, stderr, code } = error as { stdout: string, stderr: string, code: number }
    return `${stdout}${stderr}exit code ${code}`
  }
}

let tarball = ''

t.test('a clean clone packs the built package: both module formats, their declarations, the test kit', async t => {
  const { stdout: head } = await exec('git', ['rev-parse', 'HEAD'], { cwd: root })
  t.comment(`packing HEAD, ${head.trim()}: commit what you want checked`)
  await exec('git', ['clone', '--quiet', '--no-hardlinks', root, clone], { cwd: root })
  await npm(clone, 'ci', '--prefer-offline')
  const { stdout } = await npm(clone, 'pack', '--json', '--pack-destination', scratch)
  const [packed] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  tarball = join(scratch, packed.filename)
  const paths = packed.files.map(file => file.path)
  const expected = ['LICENSE', 'README.md', 'package.json']
  for (const format of ['esm', 'cjs']) {
    expected.push(`dist/${format}/package.json`)
    for (const module of ['index', 'testing', 'client', 'lib/backend/redis', 'lib/metrics', 'types/index']) {
      expected.push(`dist/${format}/${module}.js`, `dist/${format}/${module}.d.ts`)
    }
  }
  t.strictSame(expected.filter(path => !paths.includes(path)), [], 'nothing the package exports is missing')
  t.strictSame(paths.filter(path => !expected.includes(path) && !/^dist\/(esm|cjs)\/(index|testing|client|lib\/.+|types\/index)\.(js|d\.ts)$/.test(path)), [],
    'and it holds nothing else: no sources, tests or benchmarks')
})

t.test('an application that installs only fastify, the plugin and the newest TypeScript type-checks strictly and links over injectWS and with the client', async t => {
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'package-check-app', private: true, type: 'module' }))
  await npm(app, 'install', '--no-package-lock', tarball, 'fastify', 'typescript@latest')
  t.comment(['fastify', '@fastify/websocket', 'ws', '@types/ws', 'typescript'].map(name => `${name} ${installed(name)}`).join(', '))
  t.strictSame(readdirSync(join(app, 'node_modules')).filter(name => name === 'ioredis' || name === 'prom-client'), [],
    'the optional peers are not installed with the plugin')
  writeFileSync(join(app, 'minimal.ts'), minimalApp)
  t.equal(await compile(['minimal.ts']), '', 'injectWS, request.ws, the test kit and the client type-check with skipLibCheck false')
  const { stdout } = await exec(process.execPath, ['out/minimal.js'], { cwd: app })
  t.strictSame(JSON.parse(stdout), {
    injected: 'krmx/accepted',
    upgrades: 2,
    linked: { type: 'krmx/linked', payload: { username: 'bob' } },
    users: [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }],
    client: [
      { username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }, { username: 'dave', isLinked: true }, { username: 'carol', isLinked: true }
    ]
  })
})

t.test("with TypeBox and the newest ioredis: the README's test-kit example passes, and a one-node cluster links", async t => {
  await npm(app, 'install', '--no-package-lock', '@sinclair/typebox', 'ioredis@latest')
  const { stdout: newest } = await npm(app, 'view', 'ioredis', 'version')
  t.equal(installed('ioredis'), newest.trim(), 'the newest ioredis installs beside the plugin (no ERESOLVE)')
  const example = readmeSnippets().find(snippet => snippet.name === 'app.test.ts')
  writeFileSync(join(app, 'app.test.ts'), example?.code ?? 'throw new Error("the README has no app.test.ts")')
  writeFileSync(join(app, 'cluster.ts'), clusterApp)
  t.equal(await compile(['app.test.ts', 'cluster.ts']), '', 'the example and the cluster app type-check')
  const tested = await exec(process.execPath, ['--test', '--test-reporter=tap', 'out/app.test.js'], { cwd: app }).catch((error: { stdout: string }) => error)
  t.match(tested.stdout, /\n# pass [1-9]\d*\n# fail 0\n/, "the README's test-kit example passes under node --test")
  const redis = await RedisServer.start(t)
  const { stdout } = await exec(process.execPath, ['out/cluster.js'], { cwd: app, env: { REDIS_URL: redis.url } })
  t.strictSame(JSON.parse(stdout), {
    ioredis: newest.trim(),
    frames: [
      { type: 'krmx/accepted' },
      { type: 'krmx/joined', payload: { username: 'alice' } },
      { type: 'krmx/linked', payload: { username: 'alice' } }
    ],
    users: [{ username: 'alice', isLinked: true }]
  })
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  t.strictSame([await admin.zrange('{package-check}:users', 0, -1), await admin.hgetall('{package-check}:links')], [['alice'], {}],
    'alice stays in the user space, unlinked, after her instance closed')
})
