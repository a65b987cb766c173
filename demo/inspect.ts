/**
 * The `/inspect` page: a live view of the inspection events the server
 * streams at the WebSocket `/inspect` (`signalbox serve --inspect`), its own
 * sessions' and those browser clients send. One card per machine: its
 * diagram, generated from the definition the actor event carries, with the
 * current state highlighted, and its recent events. Offline: nothing but this
 * server is contacted.
 */
import type { InspectionMessage } from '../cli/inspection.js';
import { describeValue, highlight, renderStatechart, type StateConfig, type StateValue } from './statechart.js';

const MAX_EVENTS = 12;

interface Card {
  root: HTMLElement;
  value: HTMLElement;
  diagram?: HTMLElement;
  events: HTMLOListElement;
  ended: boolean;
}

const cards = new Map<string, Card>();
const names = new Map<string, string>();
const list = document.getElementById('sessions')!;
const status = document.getElementById('inspect-status')!;
const showEnded = document.getElementById('show-ended') as HTMLInputElement;

const visible = (card: Card) => !card.ended || showEnded.checked;
showEnded.addEventListener('change', () => {
  for (const card of cards.values()) card.root.hidden = !visible(card);
});

function card(message: Extract<InspectionMessage, { type: '@xstate.actor' }>): void {
  names.set(message.sessionId, message.name);
  let config: StateConfig | undefined;
  try {
    config = JSON.parse(message.definition) as StateConfig;
  } catch {
    config = undefined;
  }
  // Callback and promise actors (signalling, rtc, …) have no states to draw: they show up as sources of events.
  if (!config?.states || cards.has(message.sessionId)) return;
  const root = document.createElement('div');
  root.className = 'machine';
  root.dataset.session = message.sessionId;
  root.dataset.machine = message.name;
  const title = document.createElement('h4');
  const parent = message.parentId ? ` ← ${names.get(message.parentId) ?? message.parentId.slice(0, 6)}` : '';
  title.textContent = `${message.name}${config.id && config.id !== message.name ? ` (${config.id})` : ''}${parent}`;
  const value = document.createElement('div');
  value.className = 'value';
  const diagram = renderStatechart(config);
  const events = document.createElement('ol');
  events.className = 'events';
  root.append(title, value, diagram, events);
  list.prepend(root);
  const entry: Card = { root, value, diagram, events, ended: false };
  cards.set(message.sessionId, entry);
  snapshot(message.sessionId, message.snapshot);
}

function snapshot(sessionId: string, snap: { value?: unknown; status?: string } | undefined): void {
  const entry = cards.get(sessionId);
  if (!entry || !snap) return;
  const value = snap.value as StateValue | undefined;
  entry.value.textContent = `${snap.status ?? 'active'}: ${describeValue(value)}`;
  entry.root.dataset.state = describeValue(value);
  entry.ended = snap.status !== undefined && snap.status !== 'active';
  entry.root.classList.toggle('ended', entry.ended);
  entry.root.hidden = !visible(entry);
  if (entry.diagram) highlight(entry.diagram, value);
}

function event(message: Extract<InspectionMessage, { type: '@xstate.event' }>): void {
  const entry = cards.get(message.sessionId);
  if (!entry) return;
  const type = (message.event as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || type.startsWith('xstate.')) return;
  const li = document.createElement('li');
  const from = message.sourceId ? names.get(message.sourceId) : undefined;
  li.textContent = from ? `${type} ← ${from}` : type;
  entry.events.prepend(li);
  while (entry.events.childElementCount > MAX_EVENTS) entry.events.lastElementChild!.remove();
}

function connect() {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/inspect`);
  socket.addEventListener('open', () => (status.textContent = 'Live: sessions appear as they start.'));
  socket.addEventListener('close', () => {
    status.textContent = 'Not connected (is the server running with --inspect?). Retrying…';
    setTimeout(connect, 2000);
  });
  socket.addEventListener('message', ({ data }) => {
    if (typeof data !== 'string') return;
    let message: InspectionMessage;
    try {
      message = JSON.parse(data) as InspectionMessage;
    } catch {
      return;
    }
    if (message.type === '@xstate.actor') card(message);
    else if (message.type === '@xstate.snapshot') snapshot(message.sessionId, message.snapshot);
    else if (message.type === '@xstate.event') event(message);
  });
}
connect();
