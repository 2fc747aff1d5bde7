// The protocol suites sessions, on the in-memory backend.
import { inMemory } from '../helpers/app.js'
import sessions from './sessions.js'
import sessionExtension from './session-extension.js'

for (const suite of [sessions, sessionExtension]) {
  suite(inMemory)
}
