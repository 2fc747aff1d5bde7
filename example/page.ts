import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { FastifyInstance } from 'fastify'

/**
 * Serves the demo page at `/`: page/index.html, and page/main.ts with fastify-link-server/client bundled by
 * esbuild when the server starts (no CDN, nothing built ahead of time to go stale).
 */
export async function servePage (app: FastifyInstance): Promise<void> {
  const html = await readFile(new URL('page/index.html', import.meta.url), 'utf8')
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('page/main.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    logLevel: 'silent'
  })
  const script = bundle.outputFiles[0].text
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(html))
  app.get('/app.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(script))
}
