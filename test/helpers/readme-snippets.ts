import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const root = join(import.meta.dirname, '..', '..')

/** A TypeScript block of the README or a guide that is checked: `file` for a copy of a file of this repository, `typecheck` for one compiled on its own. */
export interface Snippet { kind: 'file' | 'typecheck', name: string, code: string, page: string }

/** The pages for users: the README, then the guides of docs/ in the order of their names. */
export function userPages (): string[] {
  const guides = readdirSync(join(root, 'docs')).filter(name => name.endsWith('.md')).sort().map(name => `docs/${name}`)
  return ['README.md', ...guides]
}

/**
 * The TypeScript blocks marked `<!-- file: path -->` or `<!-- typecheck: name.ts -->` of the README and the
 * guides in docs/, in order.
 */
export function readmeSnippets (): Snippet[] {
  const snippets: Snippet[] = []
  for (const page of userPages()) {
    const text = readFileSync(join(root, page), 'utf8')
    for (const match of text.matchAll(/<!-- (file|typecheck): ([^ ]+) -->\n```ts\n([\s\S]*?)```\n/g)) {
      snippets.push({ kind: match[1] as Snippet['kind'], name: match[2], code: match[3], page })
    }
  }
  return snippets
}

/** A file of the example as the README shows it: importing the package by name. */
export function asPublished (path: string): string {
  return readFileSync(join(root, path), 'utf8').replaceAll("'../index.js'", "'fastify-link-server'").replaceAll("'../client.js'", "'fastify-link-server/client'")
}
