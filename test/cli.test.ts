import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

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
