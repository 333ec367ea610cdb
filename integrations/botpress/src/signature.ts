// `Baton-Signature` on the hub's calls: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
// under the bot's signing secret. Botpress passes webhooks through without authenticating them,
// so this check is the only thing that keeps anyone else from speaking as the desk.
import { createHmac, timingSafeEqual } from 'node:crypto'

export const SIGNATURE_HEADER = 'baton-signature'

/** A signed time further than this from our clock is refused: a captured call cannot be replayed. */
export const MAX_CLOCK_SKEW_SECONDS = 5 * 60

export type SignatureCheck = { ok: true } | { ok: false; reason: string }

/** The hex HMAC the hub puts in `v1` for `rawBody` signed at `t`. */
export function expectedSignature(secret: string, t: number, rawBody: string): string {
  return createHmac('sha256', secret).update(`${t}.`).update(rawBody, 'utf8').digest('hex')
}

/** Whether `header` signs exactly `rawBody` under `secret`, at a time close enough to `nowSeconds`. */
export function checkSignature(
  header: string | undefined,
  rawBody: string,
  secret: string,
  nowSeconds: number
): SignatureCheck {
  if (!header) {
    return { ok: false, reason: 'no Baton-Signature header' }
  }
  let t: number | undefined
  const candidates: string[] = []
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2)
    if (key === 't' && value && /^\d+$/.test(value)) {
      t = Number(value)
    } else if (key === 'v1' && value) {
      candidates.push(value.toLowerCase())
    }
  }
  if (t === undefined || candidates.length === 0) {
    return { ok: false, reason: 'Baton-Signature is not t=…,v1=…' }
  }
  if (Math.abs(nowSeconds - t) > MAX_CLOCK_SKEW_SECONDS) {
    return { ok: false, reason: `signed at ${t}, more than five minutes from now (${Math.floor(nowSeconds)})` }
  }
  const expected = Buffer.from(expectedSignature(secret, t, rawBody), 'hex')
  // Several v1 values may come while a secret is being rotated: any one that matches will do.
  const matches = candidates.some((candidate) => {
    const given = Buffer.from(candidate, 'hex')
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
  return matches ? { ok: true } : { ok: false, reason: 'the signature does not match the body' }
}
