import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { LinkTestClient } from '../../testing.js'
import { eventually } from '../helpers/waits.js'
import { asPublished, readmeSnippets, root, userPages } from '../helpers/readme-snippets.js'

t.test('the README shows the example files as they are, and it and the guides check every snippet they mark', async t => {
  const snippets = readmeSnippets()
  t.strictSame(snippets.map(({ page, kind, name }) => `${page} ${kind}: ${name}`), [
    'README.md file: example/app.ts', 'README.md file: example/server.ts', 'README.md file: example/client.ts',
    'README.md typecheck: app.test.ts',
    'docs/authentication.md typecheck: jwt-upgrade.ts', 'docs/authentication.md typecheck: jwt-authenticate.ts',
    'docs/fastify.md typecheck: own-websocket.ts', 'docs/fastify.md typecheck: contexts.ts',
    'docs/typed-messages.md typecheck: typed-messages.ts'
  ])
  for (const snippet of snippets.filter(({ kind }) => kind === 'file')) {
    t.equal(snippet.code, asPublished(snippet.name), `${snippet.name} is in the README as it is`)
  }
})

/** The anchors GitHub gives the headings of a Markdown page. */
function anchorsOf (markdown: string): Set<string> {
  const anchors = new Set<string>()
  for (const [, heading] of markdown.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-'))
  }
  return anchors
}

t.test('the README is at most 30 KB, and every link between it and the guides reaches a file and a heading', async t => {
  t.ok(readFileSync(join(root, 'README.md')).length <= 30_000, 'the README is at most 30 KB')
  const broken: string[] = []
  let links = 0
  for (const page of userPages()) {
    const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) {
        continue
      }
      links++
      const [file, anchor] = target.split('#')
      const path = file === '' ? join(root, page) : join(root, dirname(page), file)
      if (!existsSync(path)) {
        broken.push(`${page}: ${target} (no such file)`)
      } else if (anchor !== undefined && !anchorsOf(readFileSync(path, 'utf8')).has(anchor)) {
        broken.push(`${page}: ${target} (no such heading)`)
      }
    }
  }
  t.strictSame(broken, [], `every one of the ${links} links reaches its target`)
  t.ok(links > 50, `the pages link to each other (${links} links)`)
})

t.test('the Redis keys are listed in one place, docs/scaling-out.md, and that list is every key the scripts use', async t => {
  const guide = readFileSync(join(root, 'docs/scaling-out.md'), 'utf8')
  const rows = guide.split('\n').filter(line => line.startsWith('| `{ns}'))
  const listed = new Set(rows.flatMap(row => [...row.split('|')[1].matchAll(/`\{ns\}(:[a-z]+:?)/g)].map(([, key]) => key)))
  // The scripts build keys as P .. ':users'; the backend names the ones it passes and the channels as ${this.prefix}:seq.
  const directory = join(root, 'lib/backend/redis')
  const sources = readdirSync(directory).map(file => readFileSync(join(directory, file), 'utf8')).join('\n')
  const used = new Set([...sources.matchAll(/(?:P \.\. '|\$\{this\.prefix\})(:[a-z]+:?)/g)].map(([, key]) => key))
  t.strictSame([...listed].sort(), [...used].sort())
  for (const page of userPages().filter(page => page !== 'docs/scaling-out.md')) {
    t.notMatch(readFileSync(join(root, page), 'utf8'), /^\| `\{ns\}:/m, `${page} has no table of keys of its own`)
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
  t.match(listening?.url, /^ws:\/\/127\.0\.0\.1:\d+\/link\/:room$/, `the start log names the URL; the server printed: ${server.output.join('\n')}`)
  const { url, pid } = listening as { url: string, pid: number }
  return { server, url: url.replace(':room', 'general'), pid } // the channel general
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
