import { FST_LINK_INVALID_OPTION } from '../errors.js'
import { maximumTimerMilliseconds } from './defaults.js'

/** A positive integer (or `Infinity` where `unbounded` is allowed). */
export function resolveCount (name: string, value: unknown, fallback: number, unbounded: boolean): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || value < 1 || !(Number.isInteger(value) || (unbounded && value === Infinity))) {
    throw new FST_LINK_INVALID_OPTION(name, unbounded ? 'must be a positive integer or Infinity' : 'must be a positive integer')
  }
  return value
}

/** A positive integer, or `0` for off, which becomes `off`. */
export function resolveOff (name: string, value: unknown, fallback: number, off: number): number {
  if (value === 0) {
    return off
  }
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be 0 (off) or a positive integer')
  }
  return value
}

export function resolvePath (name: string, path: unknown, fallback: string | undefined): string | undefined {
  if (path === undefined) {
    return fallback
  }
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a string that starts with "/"')
  }
  return path
}

export function resolveText (name: string, value: unknown, fallback: string): string {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a non-empty string')
  }
  return value
}

export function resolveBoolean (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'boolean') {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a boolean')
  }
  return value
}

export function resolveMilliseconds (name: string, value: unknown, fallback: number): number {
  if (value === undefined) {
    return fallback
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FST_LINK_INVALID_OPTION(name, 'must be a finite number of milliseconds')
  }
  return value
}

/** A delay that Node's timers can keep: a larger one would fire at once. */
export function resolveTimer (name: string, milliseconds: number): number {
  if (milliseconds > maximumTimerMilliseconds) {
    throw new FST_LINK_INVALID_OPTION(name, `must be at most ${maximumTimerMilliseconds} milliseconds (about 24.8 days), the longest delay Node's timers keep`)
  }
  return milliseconds
}

/** An option that is an object of options of its own (`cluster`, `replay`): a plain object, with only the names it has. */
export function resolveGroup (group: string, value: unknown, names: readonly string[], shape: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FST_LINK_INVALID_OPTION(group, shape)
  }
  for (const name of Object.keys(value)) {
    if (!names.includes(name)) {
      throw new FST_LINK_INVALID_OPTION(`${group}.${name}`, `is not a ${group} option (they are: ${names.join(', ')})`)
    }
  }
  return value as Record<string, unknown>
}
