import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { LinkMessage, LinkMessageError } from '../../types/index.js'

/** Checks one message the server sent: its errors, or `undefined` when it passes. */
export type MessageValidator = (message: LinkMessage) => readonly LinkMessageError[] | undefined

/** At most this many errors of one message are reported. */
const maxErrors = 10

/**
 * A validator of the messages the server sends, by the server's `serverMessages` schemas (TypeBox's `Value`, which
 * compiles nothing: no `eval`, so it runs under a strict Content Security Policy). A message whose type has no schema
 * is invalid too, unless `strict` is `false`. Give it to `createLinkClient(url, { validate })`; a client that does not
 * import it does not bundle TypeBox.
 */
export function validateMessages (schemas: Record<string, TSchema>, { strict = true }: { strict?: boolean } = {}): MessageValidator {
  return message => {
    const schema = Object.hasOwn(schemas, message.type) ? schemas[message.type] : undefined
    if (schema === undefined) {
      return strict ? [{ path: '/type', message: 'Unregistered message type' }] : undefined
    }
    if (Value.Check(schema, message.payload)) {
      return undefined
    }
    return [...Value.Errors(schema, message.payload)].slice(0, maxErrors).map(error => ({ path: `/payload${error.path}`, message: error.message }))
  }
}
