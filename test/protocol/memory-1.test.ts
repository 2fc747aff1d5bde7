// The protocol suites link, leave, unlink, messages, krmx-client, listeners, api, route, jwt, user-queries, on the in-memory backend.
import { inMemory } from '../helpers/app.js'
import link from './link.js'
import leave from './leave.js'
import unlink from './unlink.js'
import messages from './messages.js'
import krmxClient from './krmx-client.js'
import listeners from './listeners.js'
import api from './api.js'
import route from './route.js'
import jwt from './jwt.js'
import userQueries from './user-queries.js'

for (const suite of [link, leave, unlink, messages, krmxClient, listeners, api, route, jwt, userQueries]) {
  suite(inMemory)
}
