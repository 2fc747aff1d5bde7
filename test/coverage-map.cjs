'use strict'
// Coverage is enforced (100%) for the plugin's own code only: index.ts and lib/. A test of the
// repository's tooling loads none of it, and would count every line of it as missed: it maps to none.
const { readdirSync } = require('node:fs')
const { join } = require('node:path')

const root = join(__dirname, '..')
const covered = ['index.ts', ...readdirSync(join(root, 'lib')).filter(file => file.endsWith('.ts')).map(file => `lib/${file}`)]
const tooling = ['bench-results.test.ts']

module.exports = (testFile) => tooling.some(name => testFile.endsWith(name)) ? null : covered
