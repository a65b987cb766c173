/**
 * The demo served at `/` by `signalbox serve`: file drop and a CloudLink
 * lobby between browser windows, and each machine's state as it runs. It
 * talks only to the server it came from (no CDN, nothing outside), so it
 * works on a LAN with no internet. Built by `npm run build` into dist/demo/.
 */
import { createActor, type AnyActorRef, type InspectionEvent, type Observer } from 'xstate';
import { fromRtc, fromTransport, type Transport } from '../src/index.js';
import { clientCodec as cloudlinkCodec, cloudlinkHost, cloudlinkPeer } from '../machines/cloudlink/index.js';
import {
  blobSource,
  clientCodec as filedropCodec,
  filedropReceiver,
  filedropSender,
  memorySink,
  normalizeCode,
} from '../machines/filedrop/index.js';
import { webSocketTransport } from '../adapters/websocket/index.js';
import { inspectionObserver } from '../cli/inspection.js';
import { describeValue, highlight, renderStatechart, type StateConfig, type StateValue } from './statechart.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ws = (path: string) => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
/** No STUN: the demo is for one machine or one LAN, and must not reach outside. */
const rtc = (trickle: boolean) => fromRtc({ RTCPeerConnection, trickle, config: { iceServers: [] } });

/** `?inspect` in the address: this page's actors go to the server's inspector too (`signalbox serve --inspect`). */
const inspect: Observer<InspectionEvent> | undefined = new URLSearchParams(location.search).has('inspect')
  ? (() => {
      const socket = new WebSocket(ws('/inspect'));
      const queue: string[] = [];
      socket.addEventListener('open', () => queue.splice(0).forEach((frame) => socket.send(frame)));
      return inspectionObserver((message) => {
        const frame = JSON.stringify(message);
        if (socket.readyState === WebSocket.OPEN) socket.send(frame);
        else if (socket.readyState === WebSocket.CONNECTING) queue.push(frame);
      });
    })()
  : undefined;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/* ---- the machines view ---------------------------------------------------- */

/** Shows `actor`'s diagram in the machines panel and keeps its current state highlighted. */
function watch(actor: AnyActorRef, label: string): void {
  const card = document.createElement('div');
  card.className = 'machine';
  card.dataset.machine = label;
  const title = document.createElement('h4');
  const value = document.createElement('div');
  value.className = 'value';
  const config = (actor as unknown as { logic: { config: StateConfig } }).logic.config;
  const diagram = renderStatechart(config);
  title.textContent = `${label} (${config.id ?? 'machine'})`;
  card.append(title, value, diagram);
  $('machine-list').prepend(card);
  const update = (snapshot: { value: StateValue; status: string }) => {
    value.textContent = `${snapshot.status}: ${describeValue(snapshot.value)}`;
    card.dataset.state = describeValue(snapshot.value);
    card.classList.toggle('ended', snapshot.status !== 'active');
    highlight(diagram, snapshot.value);
  };
  update(actor.getSnapshot());
  actor.subscribe({ next: update, error: () => card.classList.add('ended') });
}

/* ---- file drop: send ------------------------------------------------------ */

let sender: ReturnType<typeof startSender> | undefined;

function startSender(file: File) {
  const actor = createActor(
    filedropSender.provide({
      actors: { signalling: fromTransport(() => webSocketTransport(ws('/filedrop')), filedropCodec()), rtc: rtc(true) },
    }),
    { input: { source: blobSource(file) }, ...(inspect && { inspect }) },
  );
  const rows = new Map<string, HTMLLIElement>();
  const row = (peer: string) => {
    let li = rows.get(peer);
    if (!li) {
      li = document.createElement('li');
      rows.set(peer, li);
      $('send-receivers').append(li);
    }
    return li;
  };
  actor.on('assigned', ({ detail }) => {
    const link = `${location.origin}/#${detail.id}`;
    $('send-code').textContent = detail.id;
    const a = $<HTMLAnchorElement>('send-link');
    a.href = link;
    a.textContent = link;
    $('send-status').hidden = false;
  });
  actor.on('requested', ({ detail }) => (row(detail.peer).textContent = `${detail.peer}: connecting…`));
  actor.on('progress', ({ detail }) => {
    row(detail.peer).textContent = `${detail.peer}: ${formatBytes(detail.received)} of ${formatBytes(detail.total)}`;
  });
  actor.on('completed', ({ detail }) => {
    const li = row(detail.peer);
    li.textContent = `${detail.peer}: done, verified by the receiver`;
    li.className = 'ok';
  });
  actor.on('failed', ({ detail }) => {
    const li = row(detail.peer);
    li.textContent = `${detail.peer}: ${detail.error.reason} (${detail.error.message})`;
    li.className = 'bad';
  });
  actor.on('stopped', ({ detail }) => {
    $('send-code').textContent += detail.error?.reason === 'cancelled' ? ' (stopped)' : ' (ended)';
    $<HTMLButtonElement>('send-cancel').disabled = true;
  });
  watch(actor, `sender: ${file.name}`);
  actor.start();
  $<HTMLButtonElement>('send-cancel').disabled = false;
  $('send-receivers').replaceChildren();
  return actor;
}

function offer(file: File | undefined) {
  if (!file) return;
  sender?.send({ type: 'cancel' });
  sender = startSender(file);
}

$<HTMLInputElement>('file-input').addEventListener('change', (e) => offer((e.target as HTMLInputElement).files?.[0]));
const zone = $('drop-zone');
zone.addEventListener('dragover', (e) => {
  e.preventDefault();
  zone.classList.add('over');
});
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (e) => {
  e.preventDefault();
  zone.classList.remove('over');
  offer(e.dataTransfer?.files[0]);
});
$('send-cancel').addEventListener('click', () => sender?.send({ type: 'cancel' }));

/* ---- file drop: receive --------------------------------------------------- */

let receiver: ReturnType<typeof startReceiver> | undefined;

function startReceiver(code: string) {
  const sink = memorySink();
  const actor = createActor(
    filedropReceiver.provide({
      actors: { signalling: fromTransport(() => webSocketTransport(ws('/filedrop')), filedropCodec()), rtc: rtc(true) },
    }),
    { input: { code, sink }, ...(inspect && { inspect }) },
  );
  const status = $('receive-status');
  const bar = $<HTMLProgressElement>('receive-progress');
  const rate = $('receive-rate');
  const hash = $('receive-hash');
  const save = $<HTMLAnchorElement>('receive-save');
  status.hidden = false;
  save.hidden = true;
  hash.textContent = '';
  hash.className = 'hash';
  bar.value = 0;
  rate.textContent = 'asking the sender…';
  $('receive-file').textContent = `Code ${normalizeCode(code)}`;
  $<HTMLButtonElement>('receive-cancel').disabled = false;
  let started = 0;
  actor.on('file', ({ detail }) => {
    $('receive-file').textContent = `${detail.file.name} (${formatBytes(detail.file.size)})`;
    rate.textContent = 'connecting…';
  });
  actor.on('progress', ({ detail }) => {
    started ||= performance.now();
    const seconds = Math.max((performance.now() - started) / 1000, 0.001);
    bar.value = detail.total > 0 ? detail.received / detail.total : 1;
    rate.textContent = `${formatBytes(detail.received)} of ${formatBytes(detail.total)} · ${formatBytes(detail.received / seconds)}/s`;
  });
  actor.on('completed', ({ detail }) => {
    bar.value = 1;
    hash.textContent = `SHA-256 verified: ${detail.sha256}`;
    hash.classList.add('ok');
    hash.dataset.sha256 = detail.sha256;
    const url = URL.createObjectURL(new Blob([sink.bytes() as BlobPart], { type: detail.file.type }));
    save.href = url;
    save.download = detail.file.name;
    save.textContent = `Save ${detail.file.name}`;
    save.hidden = false;
  });
  actor.on('stopped', ({ detail }) => {
    $<HTMLButtonElement>('receive-cancel').disabled = true;
    if (detail.error) {
      hash.textContent = `${detail.error.reason}: ${detail.error.message}`;
      hash.classList.add('bad');
    }
  });
  watch(actor, `receiver: ${normalizeCode(code)}`);
  actor.start();
  return actor;
}

function receive(code: string) {
  if (!code.trim()) return;
  receiver?.send({ type: 'cancel' });
  $<HTMLInputElement>('receive-code').value = code;
  receiver = startReceiver(code);
}

$('receive-form').addEventListener('submit', (e) => {
  e.preventDefault();
  receive($<HTMLInputElement>('receive-code').value);
});
$('receive-cancel').addEventListener('click', () => receiver?.send({ type: 'cancel' }));
const fromHash = () => {
  const code = decodeURIComponent(location.hash.slice(1));
  if (code) receive(code);
};
window.addEventListener('hashchange', fromHash);
fromHash();

/* ---- CloudLink lobby ------------------------------------------------------ */

let lobby: { actor: ReturnType<typeof createActor<typeof cloudlinkPeer>>; links: Map<string, Transport> } | undefined;

function say(line: string, className = '') {
  const li = document.createElement('li');
  li.textContent = line;
  li.className = className;
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function setInLobby(inLobby: boolean) {
  for (const id of ['lobby-host', 'lobby-join']) $<HTMLButtonElement>(id).disabled = inLobby;
  $<HTMLButtonElement>('lobby-leave').disabled = !inLobby;
  $<HTMLInputElement>('chat-input').disabled = !inLobby;
  $('chat-form').querySelector('button')!.disabled = !inLobby;
}

function join(role: 'host' | 'peer', name: string) {
  const machine = (role === 'host' ? cloudlinkHost : cloudlinkPeer) as typeof cloudlinkPeer;
  const actor = createActor(
    machine.provide({
      actors: {
        signalling: fromTransport(() => webSocketTransport(ws('/ws/signalbox-demo?v=0')), cloudlinkCodec()),
        rtc: rtc(false),
      },
    }),
    { input: { lobby: name, name: role }, ...(inspect && { inspect }) },
  );
  const links = new Map<string, Transport>();
  lobby = { actor, links };
  const status = $('lobby-status');
  actor.on('initialized', ({ detail }) => {
    status.textContent = `${role === 'host' ? 'Hosting' : 'Joining'} "${name}" as ${detail.id.slice(0, 8)}…`;
  });
  actor.on('linked', ({ detail }) => {
    links.set(detail.id, detail.transport);
    status.textContent = `${role === 'host' ? 'Hosting' : 'In'} "${name}": ${links.size} linked`;
    say(`${detail.id.slice(0, 8)} linked`, 'muted');
    detail.transport.on('message', (frame) => {
      const text = String(frame);
      say(text);
      // The host is the hub of its lobby: what one peer says, the others hear.
      if (role === 'host') for (const [id, t] of links) if (id !== detail.id && t.isOpen) t.send(text);
    });
  });
  actor.on('unlinked', ({ detail }) => {
    links.delete(detail.id);
    say(`${detail.id.slice(0, 8)} left (${detail.reason})`, 'muted');
  });
  actor.on('stopped', ({ detail }) => {
    status.textContent = detail.error ? `Stopped: ${detail.error.message}` : 'Not in a lobby.';
    setInLobby(false);
    lobby = undefined;
  });
  watch(actor, `${role}: ${name}`);
  actor.start();
  setInLobby(true);
}

$('lobby-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const role = ((e as SubmitEvent).submitter as HTMLButtonElement | null)?.value === 'peer' ? 'peer' : 'host';
  const name = $<HTMLInputElement>('lobby-name').value.trim();
  if (name && !lobby) join(role, name);
});
$('lobby-leave').addEventListener('click', () => lobby?.actor.send({ type: 'leave' }));
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>('chat-input');
  const text = input.value.trim();
  if (!text || !lobby) return;
  const line = `${lobby.actor.getSnapshot().context.id?.slice(0, 8) ?? '?'}: ${text}`;
  for (const t of lobby.links.values()) if (t.isOpen) t.send(line);
  say(line, 'mine');
  input.value = '';
});
