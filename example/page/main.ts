import { createClient } from '@krmx/client'

// The demo page: presence and chat over the published Krmx client, in channels. Opened as /?username=NAME&room=CHANNEL
// (general by default) it links as that user in that channel by itself; it links again by itself after the connection
// drops, and the server's sessions keep the user and replay what it missed. The channels that exist are listed
// (from /channels), each a link to this page in it, with a box to open another. The chat lines are kept in the tab's
// sessionStorage, by channel, so that a reload keeps them.

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
  let lines = JSON.parse(sessionStorage.getItem(stored) ?? '[]') as Line[]
  const show = (): void => {
    messages.replaceChildren(...lines.map(({ from, text }) => {
      const line = document.createElement('div')
      line.dataset.message = ''
      line.textContent = `${from}: ${text}`
      return line
    }))
    messages.scrollTop = messages.scrollHeight
    sessionStorage.setItem(stored, JSON.stringify(lines))
  }
  show()

  const client = createClient({ logger: false })
  const showUsers = (): void => {
    const sorted = client.getUsers().sort((a, b) => a.username.localeCompare(b.username))
    users.replaceChildren(...sorted.map(user => {
      const item = document.createElement('li')
      item.dataset.user = user.username
      item.dataset.linked = String(user.isLinked)
      item.textContent = user.username === name ? `${user.username} (you)` : user.username
      return item
    }))
  }
  for (const event of ['join', 'link', 'unlink', 'leave'] as const) {
    client.on(event, showUsers)
  }
  client.on('message', message => {
    if (message.type === 'chat/said') {
      const line = message.payload as Line
      if (lines.some(kept => kept.id === line.id)) {
        return // delivered again: replay is at-least-once
      }
      lines.push(line)
    } else if (message.type === 'chat/history') {
      lines = (message.payload as { lines: Line[] }).lines // the replay was incomplete: the server's history instead
    } else {
      return
    }
    show()
  })
  chat.addEventListener('keydown', event => {
    if (event.key === 'Enter' && chat.value.trim() !== '' && client.getStatus() === 'linked') {
      client.send({ type: 'chat/say', payload: { text: chat.value.trim() } })
      chat.value = ''
    }
  })

  let retry = 250
  let refused = false
  const connect = async (): Promise<void> => {
    status.textContent = 'connecting'
    try {
      await client.connect(linkUrl)
    } catch {
      return // the server is away: the close that follows tries again
    }
    try {
      await client.link(name)
      retry = 250
      status.textContent = `linked as ${name} in #${room}`
      showUsers()
    } catch (err) {
      // The server refused the link (a reserved name, a full server): trying again would be refused again.
      refused = true
      status.textContent = `not linked: ${err instanceof Error ? err.message : String(err)}`
      await client.disconnect(true).catch(() => {})
    }
  }
  client.on('close', () => {
    if (refused) {
      return
    }
    // The connection dropped: link again, sooner or later.
    status.textContent = 'reconnecting'
    setTimeout(() => { connect().catch(() => {}) }, retry)
    retry = Math.min(retry * 2, 5_000)
  })
  connect().catch(() => {})
}
