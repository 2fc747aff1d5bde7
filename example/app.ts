import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyLinkServer from '../index.js'

/**
 * A chat server: every linked user's `chat/say` is broadcast to everyone as `chat/said`,
 * and every join, link, unlink, leave and message is logged.
 */
export async function buildExample (options: FastifyServerOptions = { logger: true }): Promise<FastifyInstance> {
  const app = Fastify(options)
  await app.register(fastifyLinkServer, { path: '/' })

  app.linkServer.on('authenticate', (username, info, reject) => {
    if (username.toLowerCase() === 'admin') {
      reject('admin is reserved')
    }
    app.log.info({ username, isNewUser: info.isNewUser, ip: info.request.ip }, 'authenticating')
  })
  for (const event of ['join', 'link', 'unlink', 'leave'] as const) {
    app.linkServer.on(event, (username) => app.log.info({ username }, event))
  }
  app.linkServer.on('message', (username, message) => {
    app.log.info({ username, message }, 'message')
    if (message.type === 'chat/say') {
      app.linkServer.broadcast({ type: 'chat/said', payload: { from: username, text: message.payload } })
    }
  })
  return app
}
