// An agent on the desk, through the hub's agent API (`/api/v1`), and what they see there.
import { randomUUID } from 'node:crypto'
import { AGENT_PASSWORD } from './hub'

export type DeskMessage = {
  id: string
  conversation_id: string
  author: 'end_user' | 'bot' | 'agent' | 'system'
  author_id?: string
  type: string
  text?: string
  payload: Record<string, unknown>
  status: string
  status_reason?: string
}

export type DeskHandoff = {
  id: string
  conversation_id: string
  status: string
  title: string
  description?: string
  assignee: string | null
  label?: string
  priority?: string
}

export type DeskContact = {
  id: string
  name: string
  email?: string | null
  attributes: Record<string, unknown>
}

type LogEntry = { seq: number; kind: string; data: Record<string, unknown> }

export class Agent {
  private constructor(
    private readonly _hubUrl: string,
    private readonly _token: string,
    readonly name: string
  ) {}

  static async signIn(hubUrl: string, email: string, name: string): Promise<Agent> {
    const response = await fetch(`${hubUrl}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: AGENT_PASSWORD }),
    })
    const body = (await response.json()) as { token?: string }
    if (!response.ok || !body.token) {
      throw new Error(`${email} could not sign in: ${JSON.stringify(body)}`)
    }
    return new Agent(hubUrl, body.token, name)
  }

  /** Runs a desk command (`/handoffs/{id}/assign`, …) with a fresh `txn_id`; answers its status. */
  async command(path: string, body: Record<string, unknown> = {}): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this._hubUrl}/api/v1${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this._token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, txn_id: randomUUID() }),
    })
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : null }
  }

  private async _do(path: string, body: Record<string, unknown> = {}): Promise<void> {
    const { status, body: answer } = await this.command(path, body)
    if (status !== 200) {
      throw new Error(`${path} was refused (${status}): ${JSON.stringify(answer)}`)
    }
  }

  take(handoffId: string): Promise<void> {
    return this._do(`/handoffs/${handoffId}/assign`)
  }

  reply(conversationId: string, text: string): Promise<void> {
    return this._do(`/conversations/${conversationId}/messages`, { text })
  }

  /** Sends a message of any Botpress type the desk offers (image, card, …). */
  send(conversationId: string, type: string, payload: Record<string, unknown>): Promise<void> {
    return this._do(`/conversations/${conversationId}/messages`, { type, payload })
  }

  resolve(handoffId: string, label?: string): Promise<void> {
    return this._do(`/handoffs/${handoffId}/resolve`, label ? { label } : {})
  }

  private async _log(): Promise<LogEntry[]> {
    const response = await fetch(`${this._hubUrl}/api/v1/events?after=0&limit=1000`, {
      headers: { authorization: `Bearer ${this._token}` },
    })
    const page = (await response.json()) as { events?: LogEntry[] }
    return page.events ?? []
  }

  /** The newest state of each entity of `kind`, in the order they first appeared. */
  private async _latest<T extends { id: string }>(kind: string): Promise<T[]> {
    const latest = new Map<string, T>()
    for (const entry of await this._log()) {
      if (entry.kind === kind) {
        const data = entry.data as T
        latest.set(data.id, data)
      }
    }
    return [...latest.values()]
  }

  /** The conversation as the agent reads it, oldest first. */
  async messagesOf(conversationId: string): Promise<DeskMessage[]> {
    return (await this._latest<DeskMessage>('message')).filter((m) => m.conversation_id === conversationId)
  }

  async handoff(handoffId: string): Promise<DeskHandoff | undefined> {
    return (await this._latest<DeskHandoff>('handoff')).find((h) => h.id === handoffId)
  }

  async handoffs(): Promise<DeskHandoff[]> {
    return this._latest<DeskHandoff>('handoff')
  }

  async contacts(): Promise<DeskContact[]> {
    return this._latest<DeskContact>('contact')
  }
}

/** Polls `check` until it returns a value other than undefined/false; fails with `what()` after `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: () => string | Promise<string>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) {
      return value
    }
    if (Date.now() > deadline) {
      throw new Error(`still not so after ${ms} ms: ${await what()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
