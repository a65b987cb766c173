import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { main } from '../cli/main.js';
import { startServer } from '../cli/server.js';

const TSX = ['--import', 'tsx', 'cli/bin.ts'];

function run(args: string[]) {
  const child = spawn(process.execPath, [...TSX, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }> = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiters.filter((w) => w.match(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    waitFor: (msg: string) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const found = lines.find((l) => l.msg === msg);
        if (found) resolve(found);
        else waiters.push({ match: (l) => l.msg === msg, resolve });
      }),
  };
}

describe('signalbox serve', () => {
  it('listens, serves /health and CloudLink, logs JSON lines and shuts down cleanly on SIGTERM', async () => {
    const server = run(['serve', '--port', '0', '--host', '127.0.0.1']);
    const listening = await server.waitFor('listening');
    expect(listening).toMatchObject({ level: 'info', host: '127.0.0.1', protocols: { cloudlink: '/ws/{ugi}' } });
    const base = `127.0.0.1:${listening.port}`;

    const ws = new WebSocket(`ws://${base}/ws/cli-test`);
    await new Promise((resolve) => ws.once('open', resolve));
    const initOk = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send(JSON.stringify({ opcode: 2 }));
    expect(JSON.parse(await initOk)).toMatchObject({ opcode: 3 });

    const health = (await (await fetch(`http://${base}/health`)).json()) as {
      status: string;
      connections: { cloudlink: number };
    };
    expect(health).toMatchObject({ status: 'ok', connections: { total: 1, cloudlink: 1 } });
    expect((await fetch(`http://${base}/nope`)).status).toBe(404);
    expect(server.lines.some((l) => l.msg === 'connection' && l.path === '/ws/cli-test')).toBe(true);

    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(await closed).toBe(1001);
    expect(server.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'closed']));
  });

  it.each([
    [['serve', '--port', 'eighty'], /--port must be an integer from 0 to 65535/],
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['serve', '--ice-server', 'stun:stun.example.org'], /--ice-server is not an option of serve/],
    [['launch'], /unknown command "launch"/],
    [[], /Usage: signalbox/],
  ])('exits 2 with a clear message for %j', async (args, message) => {
    const cli = run(args);
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toMatch(message);
  });

  it('applies --max-frame to every protocol', async () => {
    const server = run(['serve', '--port', '0', '--host', '127.0.0.1', '--max-frame', '256']);
    const { port, protocols } = await server.waitFor('listening');
    expect(protocols).toMatchObject({ workrooms: '/workrooms', registry: '/registry', swarm: '/swarm' });
    for (const path of ['/workrooms', '/registry', '/swarm']) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
      await new Promise((resolve) => ws.once('open', resolve));
      const answers: string[] = [];
      ws.on('message', (data) => answers.push(String(data)));
      ws.send(JSON.stringify({ type: 'x', detail: 'y'.repeat(300) }));
      for (let i = 0; i < 100 && !answers.some((a) => a.includes('ERR_FRAME_TOO_LARGE')); i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(answers.join('\n'), path).toContain('ERR_FRAME_TOO_LARGE');
      ws.close();
    }
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('exits 1 when the port is taken', async () => {
    const first = run(['serve', '--port', '0', '--host', '127.0.0.1']);
    const { port } = await first.waitFor('listening');
    const second = run(['serve', '--port', String(port), '--host', '127.0.0.1']);
    expect(await second.exited).toBe(1);
    expect(second.lines.find((l) => l.msg === 'could not start')?.error).toMatch(/EADDRINUSE/);
    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
  });
});

/** Runs the CLI to its end; stdout and stderr as text. */
function runText(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [...TSX, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Runs main() in this process; what it wrote to stdout and stderr. */
async function runMain(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { write: (text) => (stdout += text) }, { write: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

describe('signalbox help and --version', () => {
  it('prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(await runMain(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it.each([['help'], ['--help'], ['-h']])('%s lists every command on stdout', async (flag) => {
    const { code, stdout } = await runMain([flag]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: signalbox <command>/);
    for (const command of ['serve', 'send <file>', 'receive <code>', 'help [command]'])
      expect(stdout).toContain(`\n  ${command} `);
    expect(stdout).toContain('signalbox <command> --help');
  });

  it.each([
    [['send', '--help'], 'send <file>', ['--server URL', '--webrtc LIB', '--ice-server URL'], ['--out', '--port']],
    [['receive', '-h'], 'receive <code>', ['--server URL', '--ice-server URL', '--out DIR'], ['--port']],
    [['help', 'receive'], 'receive <code>', ['--out DIR'], ['--port']],
    [['serve', '--help'], 'serve', ['--port N', '--host H', '--keepalive MS', '--max-frame N'], ['--server', '--out']],
  ])('%j shows that command only, with its own options', async (args, usage, has, hasNot) => {
    const { code, stdout, stderr } = await runMain(args);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: signalbox ${usage} \\[options\\]\n`));
    for (const option of [...has, '-h, --help']) expect(stdout).toContain(`\n  ${option} `);
    for (const option of hasNot) expect(stdout).not.toContain(option);
    expect(stderr).toBe('');
  });

  it.each([
    [['help', 'launch'], /unknown command "launch"/],
    [['--port', '0', 'serve'], /the command comes first, before --port/],
    [
      ['send', 'file', '--out', 'x'],
      /--out is not an option of send \(it is one of receive\)\n\nUsage: signalbox send/,
    ],
    [['serve', 'extra'], /serve takes no operands/],
    [['receive', 'NOT-A-CODE!'], /^signalbox: "NOT-A-CODE!" is not a code: .*\n\nUsage: signalbox receive/],
  ])('exits 2 on %j, before doing anything', async (args, message) => {
    const { code, stdout, stderr } = await runMain(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(message);
  });
});

describe('Node versions', () => {
  it("the README's Node versions agree with package.json's engines and with what werift declares", () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(readme.indexOf('### Node versions'), readme.indexOf('## The demo'));
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
    };
    const werift = JSON.parse(readFileSync('node_modules/werift/package.json', 'utf8')) as {
      version: string;
      engines?: { node?: string };
    };
    // What we need is what we declare, and the quick start says the same.
    const least = /^>=(\d+)$/.exec(pkg.engines.node)?.[1];
    expect(least).toBeDefined();
    expect(section).toContain(`need Node ${least} or later`);
    expect(readme).toContain(`with Node ${least} or later`);
    // The EBADENGINE the README explains is the one npm prints: werift's own declaration.
    expect(section).toContain(`declares \`node ${werift.engines?.node}\``);
    expect(section).toContain(`keep werift ${werift.version.split('.').slice(0, 2).join('.')}`);
    expect(pkg.devDependencies.werift).toMatch(
      new RegExp(`^\\^${werift.version.split('.').slice(0, 2).join('\\.')}\\.`),
    );
  });
});

describe('signalbox send / receive as a person sees them', () => {
  it('prints the exact receive command, which works as printed, and rates without raw floats', async () => {
    const server = await startServer({ port: 0, host: '127.0.0.1' });
    const dir = await mkdtemp(join(tmpdir(), 'signalbox-cli-hint-'));
    try {
      await writeFile(join(dir, 'hello.txt'), 'hello '.repeat(2000));
      const origin = `http://127.0.0.1:${server.address.port}`;
      const sender = runText(['send', join(dir, 'hello.txt'), '--server', origin, '--ice-server', 'none']);
      let hint: RegExpExecArray | null = null;
      for (let i = 0; i < 600 && !hint; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        hint = /On the other side run:\n {2}(npx signalbox receive .+)\n/.exec(sender.stderr());
      }
      const code = sender.stdout().trim();
      expect(hint?.[1]).toBe(`npx signalbox receive ${code} --server ${origin} --ice-server none`);

      // Run it as printed (npx signalbox → this checkout's CLI), from the directory to save into.
      const words = hint![1]!.split(' ').slice(2);
      const receiver = spawn(
        process.execPath,
        [resolve('node_modules/tsx/dist/cli.mjs'), resolve('cli/bin.ts'), ...words],
        {
          cwd: await mkdtemp(join(dir, 'in-')),
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, SIGNALBOX_ICE_SERVERS: 'stun:unused.invalid' }, // the flag must win
        },
      );
      let received = '';
      receiver.stderr.on('data', (chunk) => (received += chunk));
      const [sent, got] = await Promise.all([
        sender.exited,
        new Promise<number | null>((done) => receiver.on('close', done)),
      ]);
      expect({ got, received }).toMatchObject({ got: 0 });
      expect({ sent, stderr: sender.stderr() }).toMatchObject({ sent: 0 });
      const summaries = [sender.stderr(), received].map((text) => /: 11\.7 KiB in \d+\.\d s \((.+)\)/.exec(text)?.[1]);
      for (const rate of summaries) expect(rate).toMatch(/^\d+(\.\d)? (B|KiB|MiB|GiB)\/s$/);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('says --ice-server none in the hint when SIGNALBOX_ICE_SERVERS is set and empty', async () => {
    const server = await startServer({ port: 0, host: '127.0.0.1' });
    try {
      const url = `ws://127.0.0.1:${server.address.port}/filedrop`;
      const sender = runText(['send', 'package.json', '--server', url], { SIGNALBOX_ICE_SERVERS: '' });
      let hint: RegExpExecArray | null = null;
      for (let i = 0; i < 600 && !hint; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        hint = /On the other side run:\n {2}(.+)\n/.exec(sender.stderr());
      }
      expect(hint?.[1]).toMatch(new RegExp(`^npx signalbox receive [2-9A-Z]{8} --server ${url} --ice-server none$`));
      sender.child.kill('SIGINT');
      expect(await sender.exited).toBe(1);
    } finally {
      await server.close();
    }
  }, 60_000);
});
