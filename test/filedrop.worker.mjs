// A worker_thread for test/filedrop-workers.test.ts: a filedrop sender or
// receiver whose signalling goes over BroadcastChannel to a hub in the main
// thread (no network server anywhere), and whose bytes go over a werift data
// channel on loopback. Plain .mjs so that Node runs it as is; it loads the
// TypeScript sources through tsx.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const load = (path) => tsImport(path, import.meta.url);
const [{ broadcastChannelTransport }, { clientCodec }, files, { filedropSender }, { filedropReceiver }, rtc, runtime] =
  await Promise.all([
    load('../adapters/broadcast-channel/index.ts'),
    load('../machines/filedrop/codec.ts'),
    load('../machines/transfer/files.ts'),
    load('../machines/filedrop/sender.machine.ts'),
    load('../machines/filedrop/receiver.machine.ts'),
    load('../src/rtc/index.ts'),
    load('../src/runtime.ts'),
  ]);
const { RTCPeerConnection } = await import('werift');
const { createActor } = await import('xstate');
const { WERIFT_LOOPBACK } = await load('./rtc-helpers.ts');

const { role, name, code, size } = workerData;
const report = (event) => parentPort.postMessage(event);

const actors = {
  signalling: runtime.fromTransport(() => broadcastChannelTransport({ name, path: '/filedrop' }), clientCodec()),
  rtc: rtc.fromRtc({ RTCPeerConnection, config: WERIFT_LOOPBACK, trickle: true }),
};

/** Bytes 0..n-1 of a fixed pattern, the same in both threads. */
function pattern(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

let actor;
if (role === 'sender') {
  const source = files.memorySource(pattern(size), { name: 'worker.bin', type: 'application/octet-stream' });
  actor = createActor(filedropSender.provide({ actors }), { input: { source, once: true } });
  actor.on('*', (event) => {
    if (['assigned', 'requested', 'completed', 'failed'].includes(event.type)) {
      report({ event: event.type, detail: { ...event.detail, error: event.detail.error?.code } });
    }
  });
} else {
  const sink = files.memorySink();
  actor = createActor(filedropReceiver.provide({ actors }), { input: { code, sink } });
  actor.on('*', (event) => {
    if (['assigned', 'file', 'completed'].includes(event.type)) report({ event: event.type, detail: event.detail });
  });
  actor.subscribe((snapshot) => {
    if (snapshot.status !== 'done') return;
    const bytes = sink.bytes();
    report({
      event: 'done',
      state: snapshot.value,
      error: snapshot.context.error?.code,
      size: bytes.byteLength,
      sha256: files.sha256Hex(bytes),
    });
  });
}
actor.subscribe({
  complete: () => report({ event: 'finished', role, state: actor.getSnapshot().value }),
  error: (error) => report({ event: 'error', message: String(error) }),
});
actor.start();
