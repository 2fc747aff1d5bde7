import { createLinkClient, type LinkSession } from '../../client.js'
import type { chatOptions } from '../app.js'

// The demo page: presence and chat in channels, over fastify-link-server/client. Opened as
// /?username=NAME&room=CHANNEL (general by default) it links as that user in that channel by itself. The client links
// again by itself after the connection drops, and hands the page every line once, in order: the server's sessions
// keep the user and replay what it missed. The channels that exist are listed (from /channels), each a link to this
// page in it, with a box to open another. The lines, and where the client is in them, are kept in the tab's
// sessionStorage, by channel, so that a reload keeps them and goes on after them.

interface Line { id: string, from: string, text: string }

const params = new URLSearchParams(location.search)
const username = params.get('username')
const room = params.get('room') ?? 'general'
const linkUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/link/${encodeURIComponent(room)}`
const element = <T extends HTMLElement>(selector: string): T => document.querySelector(selector) as T
const status = element('#status')
const users = element<HTMLUListElement>('#users')
const messages = element('#messages')
const chat = element<HTMLInputElement>('[data-chat]')

if (username === null) {
  const login = element<HTMLFormElement>('#login')
  login.hidden = false
  status.textContent = 'not linked'
  login.addEventListener('submit', event => {
    event.preventDefault()
    const name = new FormData(login).get('username')
    location.search = `?username=${encodeURIComponent(String(name))}`
  })
} else {
  element('#chat').hidden = false
  start(username)
  pickChannels(username)
}

/** The channel picker: the channels that exist, each a link to this page in it, and a box to open another. */
function pickChannels (name: string): void {
  const list = element<HTMLUListElement>('#channels')
  const form = element<HTMLFormElement>('#channel')
  const hrefOf = (channel: string): string => `?username=${encodeURIComponent(name)}&room=${encodeURIComponent(channel)}`
  const refresh = async (): Promise<void> => {
    const { channels } = await (await fetch('/channels')).json() as { channels: string[] }
    list.replaceChildren(...[...new Set([...channels, room])].sort().map(channel => {
      const item = document.createElement('li')
      const link = document.createElement('a')
      link.href = hrefOf(channel)
      link.textContent = channel
      link.dataset.channel = channel
      if (channel === room) link.setAttribute('aria-current', 'page')
      item.append(link)
      return item
    }))
  }
  form.addEventListener('submit', event => {
    event.preventDefault()
    const channel = String(new FormData(form).get('channel')).trim()
    if (channel !== '') location.search = hrefOf(channel)
  })
  refresh().catch(() => {})
  setInterval(() => { refresh().catch(() => {}) }, 2_000)
}

function start (name: string): void {
  const stored = `chat:${room}:${name}`
  const kept = JSON.parse(sessionStorage.getItem(stored) ?? '{"lines":[]}') as { lines: Line[], session?: LinkSession }
  let lines = kept.lines
  const client = createLinkClient<typeof chatOptions>(linkUrl, { session: kept.session })
  const show = (): void => {
    messages.replaceChildren(...lines.map(({ from, text }) => {
      const line = document.createElement('div')
      line.dataset.message = ''
      line.textContent = `${from}: ${text}`
      return line
    }))
    messages.scrollTop = messages.scrollHeight
    sessionStorage.setItem(stored, JSON.stringify({ lines, session: client.getSession() }))
  }
  show()

  // The store: the status line and the presence list follow the client's snapshot.
  client.subscribe(() => {
    const snapshot = client.getSnapshot()
    status.textContent = snapshot.status === 'linked'
      ? `linked as ${name} in #${room}`
      : snapshot.status === 'closed' ? `not linked: ${snapshot.reason ?? ''}` : snapshot.status
    const sorted = [...snapshot.users].sort((a, b) => a.username.localeCompare(b.username))
    users.replaceChildren(...sorted.map(user => {
      const item = document.createElement('li')
      item.dataset.user = user.username
      item.dataset.linked = String(user.isLinked)
      item.textContent = user.username === name ? `${user.username} (you)` : user.username
      return item
    }))
  })
  client.handle('chat/said', line => {
    lines.push(line) // each line once: the client drops what a replay repeats
    show()
  })
  client.handle('chat/history', history => {
    lines = history.lines // the replay was incomplete: the server's history instead
    show()
  })
  chat.addEventListener('keydown', event => {
    if (event.key === 'Enter' && chat.value.trim() !== '' && client.send({ type: 'chat/say', payload: { text: chat.value.trim() } })) {
      chat.value = ''
    }
  })
  // A refused link (a reserved name) is not tried again: the status says why.
  client.link(name).catch(() => {})
}
