// A real `baton-hub` for the tests: the workspace's debug build (target/debug/baton-hub, built by
// `make unit`), set up through its own CLI in a temporary data directory and serving on a free
// loopback port, as tests/api-fuzz.sh and the Rust whole-system tests start it.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..')
export const HUB_BINARY = path.join(REPO_ROOT, 'target', 'debug', 'baton-hub')

export const AGENT_PASSWORD = 'correct horse battery'

/** The hub must be allowed to call plain-http loopback URLs (the test's events endpoint). */
const HUB_ENV = { ...process.env, BATON_ALLOW_PRIVATE_URLS: '1', RUST_LOG: 'info' }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The binary, waiting a while if a rebuild has it missing for a moment. */
async function hubBinary(): Promise<string> {
  for (let waited = 0; !existsSync(HUB_BINARY); waited += 500) {
    if (waited >= 120_000) {
      throw new Error(`${HUB_BINARY} is missing: build it with \`cargo build -p baton-hub\` (make unit does)`)
    }
    await sleep(500)
  }
  return HUB_BINARY
}

/** Runs `baton-hub ARGS` with `stdin`; resolves with its standard output, rejects if it fails. */
export async function hubCli(args: string[], stdin = ''): Promise<string> {
  const binary = await hubBinary()
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: HUB_ENV, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`baton-hub ${args.join(' ')} failed (${code}): ${stderr}`))
    )
    child.stdin.end(stdin)
  })
}

/** A port nobody listens on right now (the hub binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** A hub data directory with one agent and one bot channel. */
export class HubData {
  private constructor(
    readonly dir: string,
    /** The bot's bearer token and signing secret, as `bot add` printed them. */
    readonly token: string,
    readonly signingSecret: string
  ) {}

  static async create(opts: { eventsUrl: string; agent: { email: string; name: string } }): Promise<HubData> {
    const dir = mkdtempSync(path.join(tmpdir(), 'baton-botpress-'))
    await hubCli(['agent', 'add', '--data', dir, '--email', opts.agent.email, '--name', opts.agent.name], AGENT_PASSWORD)
    const out = await hubCli(['bot', 'add', '--data', dir, '--name', 'Botpress', '--events-url', opts.eventsUrl])
    const lines = out.trimEnd().split('\n')
    const token = lines.at(-2)?.match(/^token: (.+)$/)?.[1]
    const signingSecret = lines.at(-1)?.match(/^signing-secret: (.+)$/)?.[1]
    if (!token || !signingSecret) {
      throw new Error(`bot add printed no credentials: ${out}`)
    }
    return new HubData(dir, token, signingSecret)
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** `baton-hub serve` on a free loopback port; its log goes beside the data directory. */
export class HubProcess {
  private constructor(
    private readonly _child: ChildProcess,
    readonly port: number,
    readonly logPath: string
  ) {}

  static async start(data: HubData): Promise<HubProcess> {
    const binary = await hubBinary()
    const port = await freePort()
    const logPath = `${data.dir}.serve.log`
    const log = openSync(logPath, 'a')
    const child = spawn(binary, ['serve', '--data', data.dir, '--listen', `127.0.0.1:${port}`], {
      env: HUB_ENV,
      stdio: ['ignore', 'ignore', log],
    })
    closeSync(log)
    const hub = new HubProcess(child, port, logPath)
    const deadline = Date.now() + 20_000
    while (!(await listening(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        hub.stop()
        throw new Error(`baton-hub did not start listening on ${port}:\n${hub.log()}`)
      }
      await sleep(25)
    }
    return hub
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : ''
  }

  stop(): void {
    if (this._child.exitCode === null) {
      this._child.kill('SIGKILL')
    }
    rmSync(this.logPath, { force: true })
  }
}
