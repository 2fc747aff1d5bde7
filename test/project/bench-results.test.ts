import t from 'tap'
import { isFullRun, resultsName } from '../../perf/bench/results-name.js'

t.test('only a full benchmark run replaces the published results; quick, partial and profiled runs write beside them', async t => {
  const runs: Array<[Record<string, string | boolean>, string]> = [
    [{}, 'side-by-side'],
    [{ repetitions: '5' }, 'side-by-side'],
    [{ quick: true }, 'partial'],
    [{ repetitions: '1' }, 'partial'],
    [{ servers: 'plugin' }, 'partial'],
    [{ scenarios: 'inbound' }, 'partial'],
    [{ 'storm-connections': '1000' }, 'partial'],
    [{ 'burst-senders': '20' }, 'partial'],
    [{ servers: 'plugin,krmx,bare' }, 'partial'],
    [{ profile: true }, 'profile'],
    [{ quick: true, out: 'mine' }, 'mine'],
    [{ 'storm-connections': '1000', 'memory-connections': '1000', out: 'side-by-side' }, 'side-by-side']
  ]
  t.strictSame(runs.map(([flags]) => resultsName(flags)), runs.map(([, name]) => name))
  t.strictSame([isFullRun({ servers: 'plugin,krmx,bare,bare-coalesced', scenarios: 'inbound,validation,fanout,burst,storm,memory,roundtrip' }), isFullRun({ quick: false, profile: false })], [true, true])
})
