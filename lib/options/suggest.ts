/**
 * The option name `name` most likely meant, of `candidates`: the nearest by edit distance when it is a typo
 * (`pathh`, `maxusers`), else the one it shortens (`pingIntervalMs`), if any.
 */
export function closestName (name: string, candidates: readonly string[]): string | undefined {
  const typed = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  let longestPrefix = Math.max(4, Math.ceil(typed.length * 2 / 3)) - 1
  let shortened: string | undefined
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase()
    const distance = editDistance(typed, lower)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
    const prefix = commonPrefixLength(typed, lower)
    if (prefix > longestPrefix) {
      shortened = candidate
      longestPrefix = prefix
    }
  }
  return best ?? shortened
}

function commonPrefixLength (a: string, b: string): number {
  let length = 0
  while (length < a.length && a[length] === b[length]) {
    length++
  }
  return length
}

/** Levenshtein distance: the fewest insertions, deletions and substitutions that turn `a` into `b`. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]
}
