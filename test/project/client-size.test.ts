import { createRequire } from 'node:module'
import t from 'tap'

// The size check of the build (scripts/client-size.cjs): fastify-link-server/client bundles for a browser (a Node
// built-in on its path would fail the bundle) within its budget, and validateMessages is left out unless imported.
const require = createRequire(import.meta.url)
const { clientSize, budgetMinified } = require('../../scripts/client-size.cjs') as {
  clientSize: () => { core: { minified: number, gzipped: number }, withValidation: { minified: number, gzipped: number } }
  budgetMinified: number
}

t.test('the client bundles for a browser within its budget; TypeBox comes only with validateMessages', async t => {
  const { core, withValidation } = clientSize()
  t.ok(core.minified <= budgetMinified, `${core.minified} bytes minified (${core.gzipped} gzipped), at most ${budgetMinified}`)
  t.ok(withValidation.minified > core.minified * 5, `with validateMessages: ${withValidation.minified} bytes, TypeBox's Value`)
})
