'use strict'
// Coverage is enforced (100%) for the plugin's own code only: its public entries (index.ts, testing.ts, client.ts) and lib/. A test of the
// repository's tooling loads none of it, and would count every line of it as missed: it maps to none.
// So does the README test: the servers it starts with `npm start` run under tsx, whose compilation of
// lib/ differs from tap's, and tap's process tracking would merge their coverage onto the wrong lines.
const { readdirSync } = require('node:fs')
const { join } = require('node:path')

const root = join(__dirname, '..')
const covered = ['index.ts', 'testing.ts', 'client.ts', ...readdirSync(join(root, 'lib'), { recursive: true })
  .filter(file => file.endsWith('.ts'))
  .map(file => `lib/${file.split('\\').join('/')}`)]
const tooling = ['bench-results.test.ts', 'readme.test.ts', 'client-size.test.ts']

module.exports = (testFile) => tooling.some(name => testFile.endsWith(name)) ? null : covered
