const semverPattern = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+][0-9A-Za-z.+-]*)?$/
const rangePattern = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(x|\*|0|[1-9]\d*)$/

interface VersionRange {
  major: number
  minor: number
  patch: number | undefined
}

/**
 * Decides whether a client's Krmx version is one the server speaks.
 * Versions are compared as numbers, never as string prefixes: `0.50.0` is not `0.5.x`.
 */
export class VersionCheck {
  readonly #ranges: VersionRange[]
  /** How the reject reason names the server's version, e.g. `0.6.*`. */
  readonly serverVersion: string

  constructor (ranges: readonly string[]) {
    this.#ranges = ranges.map(parseRange)
    const newest = this.#ranges[this.#ranges.length - 1]
    this.serverVersion = `${newest.major}.${newest.minor}.${newest.patch ?? '*'}`
  }

  accepts (version: string): boolean {
    const match = semverPattern.exec(version)
    if (match === null) {
      return false
    }
    const major = Number(match[1])
    const minor = Number(match[2])
    const patch = Number(match[3])
    return this.#ranges.some(range =>
      range.major === major && range.minor === minor && (range.patch === undefined || range.patch === patch)
    )
  }

  rejectReason (version: string): string {
    return `krmx server version mismatch (server=${this.serverVersion},client=${version})`
  }
}

/** Whether `range` is a version range this server understands (`0.6.x`, `0.6.*` or `0.6.3`). */
export function isVersionRange (range: unknown): range is string {
  return typeof range === 'string' && rangePattern.test(range)
}

function parseRange (range: string): VersionRange {
  const [major, minor, patch] = range.split('.')
  return {
    major: Number(major),
    minor: Number(minor),
    patch: patch === 'x' || patch === '*' ? undefined : Number(patch)
  }
}
