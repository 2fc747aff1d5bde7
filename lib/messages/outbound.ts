import type { LinkMessage } from '../../types/index.js'
import {
  FST_LINK_INVALID_MESSAGE,
  FST_LINK_INVALID_PAYLOAD,
  FST_LINK_RESERVED_TYPE,
  FST_LINK_UNENCODABLE_MESSAGE,
  FST_LINK_UNKNOWN_MESSAGE_TYPE
} from '../errors.js'
import { type EncodedFrame, encodeText, isFrame, isProtocolType } from '../frames.js'
import { type MessageChecks, payloadErrors } from './schemas.js'

/**
 * Encodes a message the application sends (`send`, `broadcast`) once, for every socket it goes to; throws the
 * coded error of a message that is not one, has a protocol type, fails its `serverMessages` schema, or is not JSON.
 */
export function encodeMessage (action: 'send' | 'broadcast', message: LinkMessage, checks: MessageChecks | undefined): EncodedFrame {
  if (!isFrame(message)) {
    throw new FST_LINK_INVALID_MESSAGE(action)
  }
  if (isProtocolType(message.type)) {
    throw new FST_LINK_RESERVED_TYPE(action, message.type)
  }
  if (checks !== undefined) {
    const check = checks.get(message.type)
    if (check === undefined) {
      throw new FST_LINK_UNKNOWN_MESSAGE_TYPE(action, message.type, 'serverMessages')
    }
    const errors = payloadErrors(check, message.payload)
    if (errors !== undefined) {
      throw new FST_LINK_INVALID_PAYLOAD(action, message.type, `${errors[0].path}: ${errors[0].message}`)
    }
  }
  let text: string | undefined
  try {
    text = JSON.stringify(message)
  } catch (err) {
    throw new FST_LINK_UNENCODABLE_MESSAGE(action, message.type, err instanceof Error ? err.message : 'a toJSON method threw')
  }
  // A toJSON of the message itself decides what goes: it must still be a frame, on every backend (a cluster would
  // refuse it when it reads it back from Redis) and for every client (a session client's number goes into it).
  if (typeof (message as { toJSON?: unknown }).toJSON === 'function' && (text === undefined || !isFrame(JSON.parse(text)))) {
    throw new FST_LINK_UNENCODABLE_MESSAGE(action, message.type, 'its toJSON does not make a { type, payload? } object')
  }
  return encodeText(text as string)
}
