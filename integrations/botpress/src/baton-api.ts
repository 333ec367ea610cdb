// A client for Baton's bot API (`/bot/v1` on the hub): the three calls a bot makes. Its `fetch` is
// passed in, so the same code runs in Botpress and in the tests against a real hub.

export type Fetch = typeof fetch

/** Who said something before the handoff, or who speaks in a relayed message. */
export type Speaker = 'user' | 'bot'

/** Baton's handoff priorities. */
export type Priority = 'low' | 'normal' | 'high' | 'urgent'

/** A message as the bot API takes it: a Botpress message type and its payload. */
export type BatonMessage = { type: string; payload: Record<string, unknown> }

export type HistoryItem = BatonMessage & { author: Speaker }

export type StartHandoff = {
  user: {
    /** The end user's id in the bot's system: the same id is the same customer on the desk. */
    id: string
    name?: string
    email?: string
    attributes?: Record<string, string>
  }
  title?: string
  description?: string
  reason?: string
  priority?: Priority
  /** The conversation so far, oldest first. */
  history: HistoryItem[]
}

export type HandoffStarted = { handoff_id: string; conversation_id: string }
export type MessageRelayed = { message_id: string }
export type HandoffClosed = { handoff_id: string; status: string }

/** The hub answered with an error (`{code, message}`), or could not be reached (`status` 0). */
export class BatonApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message)
    this.name = 'BatonApiError'
  }
}

/** Calls slower than this fail: Botpress runs actions within a time budget of its own. */
const CALL_TIMEOUT_MS = 15_000

export class BatonApi {
  private readonly _base: string

  constructor(
    hubUrl: string,
    private readonly _botToken: string,
    private readonly _fetch: Fetch = fetch
  ) {
    this._base = hubUrl.trim().replace(/\/+$/, '')
  }

  /** Hands the end user to the desk with the conversation so far; opens a handoff waiting for an agent. */
  startHandoff(start: StartHandoff): Promise<HandoffStarted> {
    return this._post('/bot/v1/handoffs', start)
  }

  /**
   * What the end user (or the bot) says while the handoff is open. The same `idempotencyKey` again
   * stores nothing new, so a delivery Botpress retries is stored once.
   */
  relayMessage(
    conversationId: string,
    message: BatonMessage & { author: Speaker; idempotencyKey?: string }
  ): Promise<MessageRelayed> {
    const { idempotencyKey, ...rest } = message
    return this._post(`/bot/v1/conversations/${encodeURIComponent(conversationId)}/messages`, {
      ...rest,
      ...(idempotencyKey ? { idempotency_key: idempotencyKey } : {}),
    })
  }

  /** Ends the handoff from the bot's side (the hub sends no event back for it). */
  closeHandoff(handoffId: string, reason?: string): Promise<HandoffClosed> {
    return this._post(`/bot/v1/handoffs/${encodeURIComponent(handoffId)}/close`, reason ? { reason } : {})
  }

  /**
   * Whether the hub is there and takes the bot token, without changing anything: a message to a
   * conversation that cannot exist is refused with 404 when the token is good and 401 when not.
   */
  async checkCredentials(): Promise<void> {
    try {
      await this.relayMessage('connection-check', { type: 'text', payload: { text: 'connection check' }, author: 'bot' })
    } catch (error) {
      if (error instanceof BatonApiError && error.status === 404) {
        return
      }
      if (error instanceof BatonApiError && error.status === 401) {
        throw new BatonApiError(401, error.code, 'Baton refused the bot token: copy the "token:" line of `baton-hub bot add`')
      }
      throw error
    }
    // A 2xx would mean the hub stored a message in a conversation that should not exist.
    throw new BatonApiError(200, 'unexpected', `${this._base} answered like no Baton hub would`)
  }

  private async _post<T>(path: string, body: unknown): Promise<T> {
    const url = `${this._base}${path}`
    let response: Response
    try {
      response = await this._fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this._botToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      })
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error)
      throw new BatonApiError(0, 'unreachable', `Baton cannot be reached at ${this._base} (${why})`)
    }
    const text = await response.text()
    let answer: unknown
    try {
      answer = text ? JSON.parse(text) : undefined
    } catch {
      answer = undefined
    }
    if (!response.ok) {
      const error = (answer ?? {}) as { code?: unknown; message?: unknown }
      const code = typeof error.code === 'string' ? error.code : `http_${response.status}`
      const message = typeof error.message === 'string' ? error.message : text.slice(0, 200)
      throw new BatonApiError(response.status, code, `Baton answered ${response.status} to ${path}: ${message}`)
    }
    if (answer === undefined || typeof answer !== 'object' || answer === null) {
      throw new BatonApiError(response.status, 'not_json', `Baton answered ${path} with no JSON object`)
    }
    return answer as T
  }
}
