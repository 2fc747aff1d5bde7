// Prints the functions with the most self time in a CPU profile: node --import tsx perf/bench/profile-summary.ts <file.cpuprofile>
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
const profile = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { nodes: Node[], samples: number[], timeDeltas: number[] }
const self = new Map<string, number>()
const byId = new Map(profile.nodes.map(node => [node.id, node]))
profile.samples.forEach((id, index) => {
  const { functionName, url, lineNumber } = (byId.get(id) as Node).callFrame
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '')}:${lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[index] ?? 0))
})
const total = [...self.values()].reduce((sum, value) => sum + value, 0)
for (const [key, micros] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 30))) {
  console.log(`${(100 * micros / total).toFixed(1).padStart(5)}%  ${key}`)
}
