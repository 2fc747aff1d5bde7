'use strict'
// The size of fastify-link-server/client in a browser bundle (esbuild: bundled, minified, ES2022, platform browser,
// so that a Node built-in on its path fails the bundle), without and with validateMessages (which brings TypeBox's
// Value). `npm run build` runs it and fails over the budget; `npm run bench:client` prints it alone.
const { gzipSync } = require('node:zlib')
const { join } = require('node:path')
const { buildSync } = require('esbuild')

const root = join(__dirname, '..')
/** The budget of the client without schemas, minified (gzipped, it is well under half of it). */
const budgetMinified = 6 * 1024

function measure (contents) {
  const result = buildSync({
    stdin: { contents, resolveDir: root, loader: 'ts', sourcefile: 'entry.ts' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    logLevel: 'silent'
  })
  const bytes = result.outputFiles[0].contents
  return { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length }
}

function clientSize () {
  return {
    core: measure("export { createLinkClient } from './client.ts'"),
    withValidation: measure("export { createLinkClient, validateMessages } from './client.ts'")
  }
}

/** Prints the sizes with `print` (console.log; the build prints to stderr, beside npm pack's JSON); throws over the budget. */
function report (print = console.log) {
  const { core, withValidation } = clientSize()
  const format = ({ minified, gzipped }) => `${minified.toLocaleString('en-US')} bytes minified, ${gzipped.toLocaleString('en-US')} gzipped`
  print(`fastify-link-server/client in a browser bundle: ${format(core)}; with validateMessages: ${format(withValidation)}`)
  if (core.minified > budgetMinified) {
    throw new Error(`the client is ${core.minified} bytes minified, over its budget of ${budgetMinified}`)
  }
}

module.exports = { clientSize, budgetMinified, report }

if (require.main === module) {
  report()
}
