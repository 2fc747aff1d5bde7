// npm run bench:depth
//
// What the maxDepth check costs beside the JSON.parse every frame pays anyway: frames of 128 bytes
// or less are never scanned; longer ones are scanned byte by byte once.
import { performance } from 'node:perf_hooks'
import { isDeeperThan } from '../../lib/frames.js'

console.log('| frame (bytes) | depth scan (µs) | toString + JSON.parse (µs) | ratio |')
console.log('|---|---|---|---|')
for (const size of [200, 1024, 16384, 65536]) {
  const text = JSON.stringify({ type: 'chat/say', payload: { text: 'x'.repeat(size / 2), list: Array.from({ length: Math.floor(size / 24) }, () => [1, { a: 1 }]) } })
  const data = Buffer.from(text)
  const runs = Math.max(2000, 2e7 / size)
  for (let index = 0; index < 1000; index++) isDeeperThan(data, 64)
  let started = performance.now()
  for (let index = 0; index < runs; index++) isDeeperThan(data, 64)
  const scan = (performance.now() - started) * 1000 / runs
  started = performance.now()
  for (let index = 0; index < runs; index++) JSON.parse(data.toString())
  const parse = (performance.now() - started) * 1000 / runs
  console.log(`| ${data.length} | ${scan.toFixed(2)} | ${parse.toFixed(2)} | ${(scan / parse).toFixed(2)} |`)
}
