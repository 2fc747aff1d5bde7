import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const root = join(import.meta.dirname, '..')

/** A TypeScript block of the README that is checked: `file` for a copy of a file of this repository, `typecheck` for one compiled on its own. */
export interface Snippet { kind: 'file' | 'typecheck', name: string, code: string }

/** The README's TypeScript blocks marked `<!-- file: path -->` or `<!-- typecheck: name.ts -->`, in order. */
export function readmeSnippets (): Snippet[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const snippets: Snippet[] = []
  for (const match of readme.matchAll(/<!-- (file|typecheck): ([^ ]+) -->\n```ts\n([\s\S]*?)```\n/g)) {
    snippets.push({ kind: match[1] as Snippet['kind'], name: match[2], code: match[3] })
  }
  return snippets
}

/** A file of the example as the README shows it: importing the package by name. */
export function asPublished (path: string): string {
  return readFileSync(join(root, path), 'utf8').replaceAll("'../index.js'", "'fastify-link-server'")
}
