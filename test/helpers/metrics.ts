import type { FastifyInstance } from 'fastify'

/**
 * The link server's metrics as `GET /metrics` serves them: every sample by name and labels, as
 * `name{label="value"}`, but the buckets and sums of the histograms, which hold timings.
 */
export async function scrape (app: FastifyInstance, path = '/metrics'): Promise<Record<string, number>> {
  const response = await app.inject(path)
  if (response.statusCode !== 200 || response.headers['content-type'] !== 'text/plain; version=0.0.4; charset=utf-8') {
    throw new Error(`GET ${path} answered ${response.statusCode} ${String(response.headers['content-type'])}: ${response.body}`)
  }
  const samples: Record<string, number> = {}
  for (const line of response.body.split('\n')) {
    if (line.startsWith('link_server_') && !/_bucket\{|_sum( |\{)/.test(line)) {
      const space = line.lastIndexOf(' ')
      samples[line.slice(0, space)] = Number(line.slice(space + 1))
    }
  }
  return samples
}

/** Only the samples of `scrape` that are not 0: what happened. */
export async function counted (app: FastifyInstance, path?: string): Promise<Record<string, number>> {
  return Object.fromEntries(Object.entries(await scrape(app, path)).filter(([, value]) => value !== 0))
}
