// The chart of the benchmark: for each metric, this plugin's ratio to the reference server, to bare
// ws and to bare ws that coalesces its writes, as bars around 1 (above 1: the plugin does better).

interface Row { scenario: string, metric: string, vsReference?: number, vsBare?: number, vsCoalesced?: number }

const bars = [
  ['vsReference', '#2b7bb9', 'plugin vs Krmx reference server'],
  ['vsBare', '#e08a1e', 'plugin vs bare ws'],
  ['vsCoalesced', '#4a9b4f', 'plugin vs bare ws, writes coalesced per turn']
] as const

export function chart (rows: Row[], machine: { cpus: number, cpu?: string, node: string }, repetitions: number): string {
  const width = 760
  const rowHeight = 48
  const left = 250
  const scaleWidth = width - left - 40
  const top = 60
  const height = top + rows.length * rowHeight + 50
  const max = Math.max(2, ...rows.flatMap(row => bars.map(([key]) => row[key] ?? 0)))
  const x = (ratio: number): number => left + (Math.log(ratio) - Math.log(1 / max)) / (2 * Math.log(max)) * scaleWidth
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    '<text x="10" y="22" font-size="15" font-weight="bold">fastify-link-server: ratio to the Krmx reference server and to bare ws (log scale, above 1 is better)</text>',
    `<text x="10" y="42" fill="#555">medians of ${repetitions} runs; ${machine.cpus} × ${escape(machine.cpu ?? 'cpu')}, Node ${machine.node}</text>`,
    `<line x1="${x(1)}" y1="${top - 8}" x2="${x(1)}" y2="${height - 40}" stroke="#333"/>`
  ]
  rows.forEach((row, index) => {
    const y = top + index * rowHeight
    parts.push(`<text x="10" y="${y + 16}">${escape(`${row.scenario}: ${row.metric}`)}</text>`)
    for (const [index, [key, color, label]] of bars.entries()) {
      const ratio = row[key]
      const offset = index * 14
      if (ratio === undefined) continue
      const x1 = Math.min(x(1), x(ratio))
      const barWidth = Math.max(1, Math.abs(x(ratio) - x(1)))
      parts.push(`<rect x="${x1}" y="${y + offset + 2}" width="${barWidth}" height="11" fill="${color}"><title>${label}: ${ratio.toFixed(2)}×</title></rect>`)
      parts.push(`<text x="${ratio >= 1 ? x1 + barWidth + 4 : x1 - 4}" y="${y + offset + 12}" text-anchor="${ratio >= 1 ? 'start' : 'end'}" font-size="10">${ratio.toFixed(2)}×</text>`)
    }
  })
  const legendY = height - 20
  for (const [index, [, color, label]] of bars.entries()) {
    parts.push(`<rect x="${10 + index * 230}" y="${legendY - 10}" width="12" height="10" fill="${color}"/><text x="${28 + index * 230}" y="${legendY}">${label}</text>`)
  }
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
