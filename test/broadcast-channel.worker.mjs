// A worker_thread for test/broadcast-channel.test.ts: a client or a hub of the
// broadcast-channel adapter, in another thread than the test. Plain .mjs so
// that Node runs it as is; it loads the TypeScript adapter through tsx.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { broadcastChannelServer, broadcastChannelTransport } = await tsImport(
  '../adapters/broadcast-channel/index.ts',
  import.meta.url,
);

const { role, name, heartbeatInterval, heartbeatTimeout, burst = 0 } = workerData;
const report = (event) => parentPort.postMessage(event);

/** Echoes text as `echo:<text>` and binary reversed; `close` closes with 4000. */
function echo(transport) {
  transport.on('message', (frame) => {
    if (frame === 'close') transport.close(4000, 'worker done');
    else if (typeof frame === 'string') transport.send(`echo:${frame}`);
    else transport.send(frame.reverse());
  });
  transport.on('close', ({ code, reason, initiator }) => report({ event: 'close', code, reason, initiator }));
}

if (role === 'client') {
  const transport = await broadcastChannelTransport({
    name,
    query: { from: 'worker' },
    heartbeatInterval,
    heartbeatTimeout,
  });
  echo(transport);
  transport.send('hello from worker');
  for (let i = 0; i < burst; i++) transport.send(`n${i}`);
  transport.send(Uint8Array.of(1, 2, 3));
  report({ event: 'connected' });
} else {
  const hub = broadcastChannelServer({ name, heartbeatInterval, heartbeatTimeout });
  hub.on('connection', ({ transport, info }) => {
    echo(transport);
    transport.send(`welcome ${info.query.get('who')}`);
  });
  report({ event: 'listening' });
}
