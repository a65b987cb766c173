import { StrictMode, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useActor } from '@xstate/react';
import { fromRtc, fromTransport } from 'signalbox';
import { clientCodec, filedropReceiver, memorySink } from 'signalbox/filedrop';
import { webSocketTransport } from 'signalbox/websocket';

/** A filedrop receiver wired to the server this page came from, and to the browser's WebRTC. */
const receiverLogic = filedropReceiver.provide({
  actors: {
    signalling: fromTransport(() => webSocketTransport(`ws://${location.host}/filedrop`), clientCodec()),
    rtc: fromRtc({ RTCPeerConnection, trickle: true }),
  },
});

function Download({ code }: { code: string }) {
  const sink = useMemo(() => memorySink(), []);
  const [snapshot, send] = useActor(receiverLogic, { input: { code, sink } });
  const { file, received, sha256, error } = snapshot.context;
  const href = useMemo(
    () => (sha256 ? URL.createObjectURL(new Blob([sink.bytes() as BlobPart], { type: file?.type })) : undefined),
    [sha256, sink, file],
  );
  return (
    <section>
      <p>
        State: <code id="state">{JSON.stringify(snapshot.value)}</code>
      </p>
      {file && (
        <p>
          {file.name}: <progress id="progress" max={file.size} value={received} /> {received} / {file.size} bytes
        </p>
      )}
      {sha256 && (
        <p>
          SHA-256 verified: <code id="sha256">{sha256}</code>{' '}
          <a href={href} download={file?.name}>
            Save
          </a>
        </p>
      )}
      {error && <p id="error">{`${error.reason}: ${error.message}`}</p>}
      {snapshot.status === 'active' && <button onClick={() => send({ type: 'cancel' })}>Cancel</button>}
    </section>
  );
}

function App() {
  const [code, setCode] = useState(location.hash.slice(1));
  const [typed, setTyped] = useState('');
  return (
    <main>
      <h1>signalbox + React: receive a file</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setCode(typed);
        }}
      >
        <input id="code" value={typed} onChange={(e) => setTyped(e.target.value)} placeholder="code" />
        <button>Receive</button>
      </form>
      {code && <Download key={code} code={code} />}
    </main>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
