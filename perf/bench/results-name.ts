// Which results a run of `npm run bench` writes: only a full run (every server and scenario at the
// default sizes, three repetitions or more, not profiled) replaces the published perf/results/side-by-side.*,
// which docs/benchmarks.md shows; any other run writes perf/results/partial.* (not committed), unless
// --out names a file.

/** The flags of `npm run bench` that decide whether a run is full. */
export interface RunFlags {
  quick?: boolean
  profile?: boolean
  repetitions?: string
  servers?: string
  scenarios?: string
  out?: string
  [size: string]: string | boolean | undefined
}

export const defaultServers = 'plugin,krmx,bare,bare-coalesced'
export const defaultScenarios = 'inbound,validation,fanout,burst,storm,memory,roundtrip'
/** The flags that change a scenario's size. */
export const sizeFlags = [
  'inbound-clients', 'inbound-messages', 'fanout-clients', 'fanout-broadcasts', 'burst-clients', 'burst-senders', 'burst-messages', 'burst-interval', 'storm-connections', 'storm-concurrency',
  'memory-connections', 'roundtrip-clients', 'roundtrip-rate', 'roundtrip-seconds'
]

/** Whether a run with these flags measures what the published results are. */
export function isFullRun (flags: RunFlags): boolean {
  return flags.quick !== true && flags.profile !== true &&
    Number(flags.repetitions ?? '3') >= 3 &&
    (flags.servers ?? defaultServers) === defaultServers &&
    (flags.scenarios ?? defaultScenarios) === defaultScenarios &&
    sizeFlags.every(flag => flags[flag] === undefined)
}

/** The name of the results files (perf/results/<name>.json and .svg) a run with these flags writes. */
export function resultsName (flags: RunFlags): string {
  if (flags.out !== undefined) {
    return flags.out
  }
  if (flags.profile === true) {
    return 'profile'
  }
  return isFullRun(flags) ? 'side-by-side' : 'partial'
}
