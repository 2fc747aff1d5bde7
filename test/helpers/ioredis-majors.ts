import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** One major of ioredis that the peer range allows, installed under its own name (`ioredis6` is an npm alias). */
export interface IoredisMajor {
  /** `ioredis 5.11.1`: the package, and the version installed. */
  name: string
  major: number
  /** What `import()` of it gives, as `createRedisBackend` loads `ioredis`. */
  load: () => Promise<unknown>
}

function major (packageName: string, load: () => Promise<unknown>): IoredisMajor {
  const { version } = require(`${packageName}/package.json`) as { version: string }
  return { name: `ioredis ${version}`, major: Number(version.split('.')[0]), load }
}

/** Every major of ioredis the cluster tests run against, oldest first: each one the peer range allows. */
export const ioredisMajors: IoredisMajor[] = [
  major('ioredis', async () => import('ioredis')),
  major('ioredis6', async () => import('ioredis6'))
]
