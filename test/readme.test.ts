import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { LinkTestClient } from '../lib/testing.js'
import { eventually } from './helper.js'
import { asPublished, readmeSnippets, root } from './readme-snippets.js'

t.test('the README shows the example files as they are, and checks every snippet it marks', async t => {
  const snippets = readmeSnippets()
  t.strictSame(snippets.map(({ kind, name }) => `${kind}: ${name}`), [
    'file: example/app.ts', 'file: example/server.ts', 'file: example/client.ts',
    'typecheck: typed-messages.ts', 'typecheck: app.test.ts', 'typecheck: jwt-upgrade.ts', 'typecheck: jwt-authenticate.ts',
    'typecheck: own-websocket.ts', 'typecheck: contexts.ts'
  ])
  for (const snippet of snippets.filter(({ kind }) => kind === 'file')) {
    t.equal(snippet.code, asPublished(snippet.name), `${snippet.name} is in the README as it is`)
  }
})

/**
 * Runs `command` in the repository, detached in a process group of its own, so that it and its children
 * can be ended by its pid. It runs the sources through tsx, as a user does, not through the test's
 * loader, so its coverage would not map onto the test's: it is left out of it.
 */
function start (command: string, args: string[], env: Record<string, string>) {
  const { NODE_V8_COVERAGE: _coverage, ...inherited } = process.env
  const child = spawn(command, args, { cwd: root, env: { ...inherited, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const output: string[] = []
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  return { child, output }
}

/** Starts `npm start` on a free port, and waits for the log line that names its URL; ends its process group when the test ends. */
async function npmStart (t: Test): Promise<{ server: ReturnType<typeof start>, url: string, pid: number }> {
  const server = start('npm', ['start'], { PORT: '0', HOST: '127.0.0.1' })
  t.teardown(() => {
    try {
      process.kill(-(server.child.pid as number), 'SIGKILL') // npm, and the server it started: the group of the pid we started
    } catch {
      // it ended already
    }
  })
  let listening: { url: string, pid: number } | undefined
  const timeout = setTimeout(() => server.child.kill(), 30_000)
  for await (const line of createInterface({ input: server.child.stdout })) {
    server.output.push(line)
    if (line.includes('"msg":"link server listening"')) {
      listening = JSON.parse(line) as { url: string, pid: number }
      break
    }
  }
  clearTimeout(timeout)
  t.match(listening?.url, /^ws:\/\/127\.0\.0\.1:\d+\/link$/, `the start log names the URL; the server printed: ${server.output.join('\n')}`)
  const { url, pid } = listening as { url: string, pid: number }
  return { server, url, pid }
}

t.test("the README's client, run against npm start, is answered", async t => {
  const { url } = await npmStart(t)
  const client = start(process.execPath, ['--import', 'tsx', 'example/client.ts'], { URL: url })
  let printed = ''
  client.child.stdout.on('data', (chunk: Buffer) => { printed += chunk.toString() })
  const clientTimeout = setTimeout(() => client.child.kill(), 30_000)
  const [code] = await once(client.child, 'exit') as [number | null]
  clearTimeout(clientTimeout)
  t.equal(code, 0, client.output.join(''))
  t.match(printed, /^\{"type":"chat\/said","payload":\{"id":"[0-9a-f-]{36}:1","from":"alice","text":"hello"\}\}\n$/)
  t.equal((await fetch(`http://${new URL(url).host}/`)).status, 200, 'npm start serves the demo page at /')
})

t.test('SIGTERM to npm start alone, as a container stop sends it, closes the server gracefully and ends every process', async t => {
  const { server, url, pid } = await npmStart(t)
  t.not(pid, server.child.pid, 'the server is a process of its own under npm')
  const ws = new WebSocket(url)
  await once(ws, 'open')
  const alice = new LinkTestClient(ws)
  await alice.link('alice')
  const exited = once(server.child, 'exit') as Promise<[number | null, string | null]>
  process.kill(server.child.pid as number, 'SIGTERM')
  let closed: { code: number, reason: string } | undefined
  alice.closed().then(close => { closed = close }, () => {})
  await eventually(() => closed !== undefined, () => `the socket is still open 10 s after the SIGTERM; it received ${JSON.stringify(alice.frames())}`)
  t.strictSame(closed, { code: 1001, reason: 'server closing' }, 'the socket is closed with 1001')
  t.strictSame(alice.unread(), [{ type: 'krmx/unlinked', payload: { username: 'alice' } }, { type: 'krmx/left', payload: { username: 'alice' } }],
    'after its user was told it was unlinked and left')
  t.strictSame(await exited, [0, null], 'npm exits with 0')
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'and the server process is gone')
})
