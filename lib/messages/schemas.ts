import { Kind, KindGuard, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { LinkMessageError } from '../../types/index.js'
import { FST_LINK_INVALID_OPTION } from '../errors.js'
import { isProtocolType } from '../frames.js'

/** At most this many errors of one invalid message are reported, however many its payload has. */
export const maxReportedErrors = 10

/** The error of a client message whose type has no schema while `strictMessages` is on. */
export const unregisteredTypeError: LinkMessageError = { path: '/type', message: 'Unregistered message type' }

const jsonTypes = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'])

/** The compiled payload checks of one `messages` or `serverMessages` option, by message type. */
export type MessageChecks = ReadonlyMap<string, TypeCheck<TSchema>>

/**
 * Checks the schemas of `option` and compiles each one once; throws `FST_LINK_INVALID_OPTION` for
 * anything that is not a map of TypeBox schemas of JSON values keyed by application message types.
 */
export function compileMessageSchemas (option: string, value: unknown): MessageChecks | undefined {
  if (value === undefined) {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FST_LINK_INVALID_OPTION(option, 'must be an object of TypeBox schemas by message type')
  }
  const checks = new Map<string, TypeCheck<TSchema>>()
  for (const [type, schema] of Object.entries(value)) {
    const name = `${option}["${type}"]`
    if (isProtocolType(type)) {
      throw new FST_LINK_INVALID_OPTION(name, 'the "krmx/" prefix is reserved for the protocol')
    }
    if (!KindGuard.IsSchema(schema)) {
      throw new FST_LINK_INVALID_OPTION(name, isTypeBox1Schema(schema)
        ? 'is a schema of TypeBox 1.x (the "typebox" package); the schemas must be made with Type from @sinclair/typebox 0.34 (import { Type } from \'@sinclair/typebox\')'
        : 'must be a schema made with Type from @sinclair/typebox 0.34 (import { Type } from \'@sinclair/typebox\'); a plain JSON schema is not compiled')
    }
    const foreign = schema[Kind] === 'Undefined' ? undefined : findNonJsonKind(schema)
    if (foreign !== undefined) {
      throw new FST_LINK_INVALID_OPTION(name, `${foreign} is not a JSON value; a type without a payload is Type.Undefined()`)
    }
    try {
      checks.set(type, TypeCompiler.Compile(schema))
    } catch (err) {
      throw new FST_LINK_INVALID_OPTION(name, `does not compile: ${(err as Error).message}`)
    }
  }
  return checks
}

/** Whether `value` was made by TypeBox 1.x, which marks its schemas with a non-enumerable `~kind`. */
function isTypeBox1Schema (value: unknown): boolean {
  return typeof value === 'object' && value !== null && '~kind' in value
}

/** The first kind in `schema` that describes something JSON cannot carry (a Date, a function), if any. */
function findNonJsonKind (schema: unknown): string | undefined {
  if (typeof schema !== 'object' || schema === null) {
    return undefined
  }
  const node = schema as Record<string | symbol, unknown>
  if (typeof node[Kind] === 'string' && typeof node.type === 'string' && !jsonTypes.has(node.type)) {
    return `Type.${node[Kind]}()`
  }
  for (const child of Object.values(node)) {
    const found = findNonJsonKind(child)
    if (found !== undefined) {
      return found
    }
  }
  return undefined
}

/**
 * The errors of a payload that fails `check`, as JSON pointers into the whole message, or `undefined`
 * when it passes. A check that throws (a recursive schema meeting a payload deep enough to overflow
 * the stack) fails the payload: it is refused, and never takes the server down.
 */
export function payloadErrors (check: TypeCheck<TSchema>, payload: unknown): LinkMessageError[] | undefined {
  try {
    if (check.Check(payload)) {
      return undefined
    }
    const errors: LinkMessageError[] = []
    for (const error of check.Errors(payload)) {
      errors.push({ path: `/payload${error.path}`, message: error.message })
      if (errors.length === maxReportedErrors) {
        break
      }
    }
    return errors
  } catch (err) {
    return [{ path: '/payload', message: `The payload could not be checked: ${err instanceof Error ? err.message : 'a non-Error was thrown'}` }]
  }
}

/** The error of a client message nested deeper than `maxDepth`, which no schema is run on. */
export function tooDeepError (maxDepth: number): LinkMessageError {
  return { path: '', message: `The message is nested deeper than ${maxDepth} levels (maxDepth)` }
}
