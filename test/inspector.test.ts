import { createWebSocketInspector } from '@statelyai/inspect';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createActor, createMachine } from 'xstate';
import { startServer, type SignalboxServer } from '../cli/server.js';
import type { InspectionMessage } from '../cli/inspection.js';
import { summarize } from '../cli/inspection.js';

let server: SignalboxServer | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await server?.close();
  server = undefined;
});

/** A WebSocket to `path` that keeps every JSON frame it receives. */
async function connect(path: string) {
  const socket = new WebSocket(`ws://127.0.0.1:${server!.address.port}${path}`);
  sockets.push(socket);
  const frames: InspectionMessage[] = [];
  socket.on('message', (data) => frames.push(JSON.parse(String(data)) as InspectionMessage));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  return { socket, frames };
}

const actorsIn = (frames: InspectionMessage[]) =>
  frames.filter((f): f is Extract<InspectionMessage, { type: '@xstate.actor' }> => f.type === '@xstate.actor');

describe('serve --inspect: the inspector hub at /inspect', () => {
  it("streams each session's actor (with its machine's definition), snapshots and events, and replays them to a late viewer", async () => {
    server = await startServer({ port: 0, host: '127.0.0.1', static: false, inspect: true });
    const viewer = await connect('/inspect');
    const client = await connect('/filedrop'); // a filedrop client: the server assigns it an id
    await expect.poll(() => client.frames.length).toBeGreaterThan(0);
    const id = (client.frames[0] as unknown as { detail: { peer: string } }).detail.peer;

    await expect.poll(() => actorsIn(viewer.frames).some((a) => a.name === id)).toBe(true);
    const actor = actorsIn(viewer.frames).find((a) => a.name === id)!;
    const definition = JSON.parse(actor.definition) as { id: string; states: Record<string, unknown> };
    expect(definition.id).toBe('filedropSession');
    expect(Object.keys(definition.states)).toEqual(['open', 'closed']);
    await expect
      .poll(() =>
        viewer.frames.some(
          (f) => f.type === '@xstate.snapshot' && f.sessionId === actor.sessionId && f.snapshot.value === 'open',
        ),
      )
      .toBe(true);

    // The session ends when its client leaves: the viewer sees its final state.
    client.socket.close();
    await expect
      .poll(() =>
        viewer.frames.some(
          (f) => f.type === '@xstate.snapshot' && f.sessionId === actor.sessionId && f.snapshot.status === 'done',
        ),
      )
      .toBe(true);

    const late = await connect('/inspect');
    await expect.poll(() => actorsIn(late.frames).some((a) => a.sessionId === actor.sessionId)).toBe(true);
    expect(late.frames.some((f) => f.type === '@xstate.snapshot' && f.snapshot.status === 'done')).toBe(true);
  });

  it("relays a browser client's own actors sent with @statelyai/inspect's createWebSocketInspector, and drops what is not an inspection event", async () => {
    server = await startServer({ port: 0, host: '127.0.0.1', static: false, inspect: true });
    const viewer = await connect('/inspect');
    const sender = await connect('/inspect');
    for (const frame of [
      'not json',
      '[]',
      '{"type":"@xstate.actor","sessionId":"x"}',
      '{"type":"hello","sessionId":"y"}',
    ])
      sender.socket.send(frame);

    const inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${server.address.port}/inspect` });
    const toggle = createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { flip: 'on' } }, on: {} } });
    const actor = createActor(toggle, { inspect: inspector.inspect }).start();
    actor.send({ type: 'flip' });

    await expect.poll(() => actorsIn(viewer.frames).some((a) => a.name === 'toggle'), { timeout: 10_000 }).toBe(true);
    const def = JSON.parse(actorsIn(viewer.frames).find((a) => a.name === 'toggle')!.definition) as {
      states: Record<string, unknown>;
    };
    expect(Object.keys(def.states)).toEqual(['off', 'on']);
    await expect
      .poll(() =>
        viewer.frames.some((f) => f.type === '@xstate.event' && (f.event as { type: string }).type === 'flip'),
      )
      .toBe(true);
    // The bad frames went nowhere.
    expect(viewer.frames.some((f) => f.sessionId === 'x' || f.sessionId === 'y')).toBe(false);
    inspector.stop();
    actor.stop();
  });

  it('is not there without --inspect', async () => {
    server = await startServer({ port: 0, host: '127.0.0.1', static: false });
    const socket = new WebSocket(`ws://127.0.0.1:${server.address.port}/inspect`);
    const status = await new Promise<number | undefined>((resolve) =>
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode)).on('error', () => resolve(undefined)),
    );
    expect(status).toBe(404);
  });
});

describe('summarize', () => {
  it('keeps events small: no bytes, no functions, long strings cut, class instances named, depth bounded', () => {
    class Transport {}
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(
      summarize({
        type: 'x',
        chunk: new Uint8Array(16384),
        fn: () => 1,
        sdp: 'v'.repeat(500),
        transport: new Transport(),
        deep: { a: { b: { c: { d: 1 } } } },
        cyclic,
      }),
    ).toEqual({
      type: 'x',
      chunk: '[16384 bytes]',
      sdp: `${'v'.repeat(160)}… (500 characters)`,
      transport: '[Transport]',
      deep: { a: { b: '{…}' } },
      cyclic: { a: 1, self: '[circular]' },
    });
  });
});
