import t from 'tap'
import { encodeText, numberedFrame } from '../../lib/frames.js'

// The frame a session client gets for a numbered message: the message's JSON with its number last.

t.test('the number goes last, in a frame whose header fits the new length; what is not an object with members goes as it is', async t => {
  const text = (frame: { payload: Buffer }): string => frame.payload.toString()
  t.equal(text(numberedFrame(encodeText('{"type":"a","payload":1}'), 7)), '{"type":"a","payload":1,"seq":7}')
  t.equal(text(numberedFrame(encodeText('{"type":"a","seq":"mine"}'), 12)), '{"type":"a","seq":"mine","seq":12}', 'the last seq wins in JSON.parse')
  const long = `{"type":"a","payload":"${'x'.repeat(100)}"}` // 120 bytes: with the number, past 125, a 16-bit length
  const numbered = numberedFrame(encodeText(long), 123_456)
  t.strictSame([numbered.bytes[1], numbered.bytes.readUInt16BE(2), text(numbered)], [126, long.length + 13, `${long.slice(0, -1)},"seq":123456}`])
  for (const odd of ['"not an object"', '{}', '[1]']) {
    const frame = encodeText(odd)
    t.equal(numberedFrame(frame, 1), frame, `${odd} goes unnumbered`)
  }
})
