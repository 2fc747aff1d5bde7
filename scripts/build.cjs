'use strict'
// Builds CommonJS (dist/cjs) and ES modules (dist/esm) from the same sources, so that
// both `require('fastify-link-server')` and `import fastifyLinkServer from 'fastify-link-server'`
// get the plugin and its types.
const { execFileSync } = require('node:child_process')
const { rmSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const root = join(__dirname, '..')
const tsc = require.resolve('typescript/bin/tsc')

rmSync(join(root, 'dist'), { recursive: true, force: true })
for (const project of ['tsconfig.build.json', 'tsconfig.build.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' })
}
writeFileSync(join(root, 'dist/cjs/package.json'), JSON.stringify({ type: 'commonjs' }) + '\n')
writeFileSync(join(root, 'dist/esm/package.json'), JSON.stringify({ type: 'module' }) + '\n')
// The client's bundle size, which fails the build over its budget; on stderr, as npm pack --json owns stdout.
require('./client-size.cjs').report(console.error)
