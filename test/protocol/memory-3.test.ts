// The protocol suites sessions, on the in-memory backend.
import { inMemory } from '../helpers/app.js'
import sessions from './sessions.js'

for (const suite of [sessions]) {
  suite(inMemory)
}
