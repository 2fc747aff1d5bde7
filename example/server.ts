import { buildExample } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

async function main (): Promise<void> {
  const app = await buildExample()
  await app.listen({ port, host })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
