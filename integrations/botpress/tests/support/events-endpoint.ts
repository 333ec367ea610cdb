// The bot's events URL for the hub: a real HTTP server on loopback that hands each call, with its
// raw body and headers, to the integration's webhook handler (as Botpress does with the calls to
// https://webhook.botpress.cloud/<webhookId>) and answers the hub with what the handler answered.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { WebhookRequest, WebhookResponse } from '../../src/webhook'

/** One call of the hub: the event's type and id, the request as it came, and the answer it got. */
export type Call = { type?: string; id?: string; request: WebhookRequest; status: number; body: string }

export class EventsEndpoint {
  /** Every call the hub made, in order, with the answer it got. */
  readonly calls: Call[] = []
  handler: (req: WebhookRequest) => Promise<WebhookResponse> = async () => ({ status: 503 })

  private constructor(
    private readonly _server: Server,
    readonly port: number
  ) {}

  static async start(): Promise<EventsEndpoint> {
    let endpoint: EventsEndpoint | undefined
    const server = createServer((req, res) => {
      void (async () => {
        const body = await rawBody(req)
        const headers = Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v])
        )
        const request: WebhookRequest = { method: req.method ?? 'GET', headers, body }
        const answer = await endpoint!.handler(request)
        endpoint!.calls.push({ ...eventOf(body), request, status: answer.status, body: answer.body ?? '' })
        res.writeHead(answer.status, answer.headers ?? {})
        res.end(answer.body ?? '')
      })()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    if (typeof address !== 'object' || !address) {
      throw new Error('the events endpoint has no port')
    }
    endpoint = new EventsEndpoint(server, address.port)
    return endpoint
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`
  }

  /** The calls for events of `type`. */
  callsFor(type: string): Call[] {
    return this.calls.filter((c) => c.type === type)
  }

  close(): Promise<void> {
    this._server.closeAllConnections()
    return new Promise((resolve) => this._server.close(() => resolve()))
  }
}

function rawBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function eventOf(body: string): { type?: string; id?: string } {
  try {
    const event = JSON.parse(body) as { type?: unknown; id?: unknown }
    return {
      type: typeof event.type === 'string' ? event.type : undefined,
      id: typeof event.id === 'string' ? event.id : undefined,
    }
  } catch {
    return {}
  }
}
