// `Baton-Signature` at its edges (the events tests check it on every call a real hub makes).
import { createHmac } from 'node:crypto'
import { describe, expect, test } from 'vitest'
import { checkSignature } from '../src/signature'

const SECRET = 's3cret'
const BODY = '{"id":"ev_1","type":"handoff.closed"}'
const NOW = 1_700_000_000

const v1 = (t: number, body = BODY, secret = SECRET) => createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')

describe('a Baton-Signature', () => {
  test('is taken up to five minutes either side of our clock, and not a second more', () => {
    expect(checkSignature(`t=${NOW - 300},v1=${v1(NOW - 300)}`, BODY, SECRET, NOW)).toEqual({ ok: true })
    expect(checkSignature(`t=${NOW + 300},v1=${v1(NOW + 300)}`, BODY, SECRET, NOW)).toEqual({ ok: true })
    expect(checkSignature(`t=${NOW - 301},v1=${v1(NOW - 301)}`, BODY, SECRET, NOW).ok).toBe(false)
    expect(checkSignature(`t=${NOW + 301},v1=${v1(NOW + 301)}`, BODY, SECRET, NOW).ok).toBe(false)
  })

  test('covers the time it names: the same signature under another time is refused', () => {
    expect(checkSignature(`t=${NOW + 1},v1=${v1(NOW)}`, BODY, SECRET, NOW)).toEqual({
      ok: false,
      reason: 'the signature does not match the body',
    })
  })

  test('covers the exact bytes: the same JSON spaced differently is refused', () => {
    const respaced = '{"id": "ev_1", "type": "handoff.closed"}'
    expect(checkSignature(`t=${NOW},v1=${v1(NOW)}`, respaced, SECRET, NOW).ok).toBe(false)
  })

  test('is taken when any of several v1 values matches, as while a secret is rotated', () => {
    const header = `t=${NOW},v1=${v1(NOW, BODY, 'old-secret')},v1=${v1(NOW)}`
    expect(checkSignature(header, BODY, SECRET, NOW)).toEqual({ ok: true })
  })

  test('is refused when it is not hex of the right length', () => {
    expect(checkSignature(`t=${NOW},v1=${v1(NOW).slice(0, 62)}`, BODY, SECRET, NOW).ok).toBe(false)
    expect(checkSignature(`t=${NOW},v1=zz${v1(NOW).slice(2)}`, BODY, SECRET, NOW).ok).toBe(false)
    expect(checkSignature(`t=soon,v1=${v1(NOW)}`, BODY, SECRET, NOW).ok).toBe(false)
  })
})
