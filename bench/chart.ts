// The chart of the benchmark: for each metric, this plugin's ratio to the reference server and to
// bare ws, as bars around 1 (above 1: the plugin does better).

interface Row { scenario: string, metric: string, vsReference?: number, vsBare?: number }

export function chart (rows: Row[], machine: { cpus: number, cpu?: string, node: string }, repetitions: number): string {
  const width = 760
  const rowHeight = 34
  const left = 250
  const scaleWidth = width - left - 40
  const top = 60
  const height = top + rows.length * rowHeight + 50
  const max = Math.max(2, ...rows.flatMap(row => [row.vsReference ?? 0, row.vsBare ?? 0]))
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
    for (const [offset, ratio, color, label] of [[0, row.vsReference, '#2b7bb9', 'vs reference'], [14, row.vsBare, '#e08a1e', 'vs bare ws']] as const) {
      if (ratio === undefined) continue
      const x1 = Math.min(x(1), x(ratio))
      const barWidth = Math.max(1, Math.abs(x(ratio) - x(1)))
      parts.push(`<rect x="${x1}" y="${y + offset + 2}" width="${barWidth}" height="11" fill="${color}"><title>${label}: ${ratio.toFixed(2)}×</title></rect>`)
      parts.push(`<text x="${ratio >= 1 ? x1 + barWidth + 4 : x1 - 4}" y="${y + offset + 12}" text-anchor="${ratio >= 1 ? 'start' : 'end'}" font-size="10">${ratio.toFixed(2)}×</text>`)
    }
  })
  const legendY = height - 20
  parts.push(`<rect x="10" y="${legendY - 10}" width="12" height="10" fill="#2b7bb9"/><text x="28" y="${legendY}">plugin vs Krmx reference server</text>`)
  parts.push(`<rect x="250" y="${legendY - 10}" width="12" height="10" fill="#e08a1e"/><text x="268" y="${legendY}">plugin vs bare ws (the practical limit)</text>`)
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
