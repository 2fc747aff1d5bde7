import { chromium } from 'playwright-core'
import { buildExample } from '../example/app.js'
import { servePage } from '../example/page.js'

// npm run screenshot: docs/demo.png, the demo page of two users chatting (alice's window), in Debian's headless Chromium.
const app = await buildExample({ logger: false })
await servePage(app)
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] })
try {
  const open = async (username: string) => {
    const page = await (await browser.newContext({ viewport: { width: 760, height: 400 } })).newPage()
    await page.goto(`http://127.0.0.1:${port}/?username=${username}`)
    await page.locator(`[data-user="${username}"][data-linked="true"]`).waitFor()
    return page
  }
  const alice = await open('alice')
  const bob = await open('bob')
  const say = async (page: typeof alice, text: string, count: number) => {
    await page.locator('[data-chat]').fill(text)
    await page.locator('[data-chat]').press('Enter')
    await alice.locator('[data-message]').nth(count - 1).waitFor()
  }
  await say(alice, 'hi bob, are you in for a game tonight?', 1)
  await say(bob, 'sure! carol is coming too', 2)
  await (await open('carol')).close() // carol was here, and is away now: unlinked, not gone
  await alice.locator('[data-user="carol"][data-linked="false"]').waitFor()
  await alice.locator('[data-chat]').fill('great, see you at 8')
  await alice.screenshot({ path: 'docs/demo.png' })
  console.log('docs/demo.png written')
} finally {
  await browser.close()
  await app.close()
}
