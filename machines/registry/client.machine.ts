import { and, assign, emit, enqueueActions, setup, type DoneActorEvent, type ErrorActorEvent } from 'xstate';
import { ErrorCode, errorCodeOf, SignalboxError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { SinkOpener } from '../filedrop/files.js';
import { checkOutgoingList, copyFiles, type ListLimits } from './codec.js';
import { RegistryError } from './errors.js';
import { registryFetch, type FetchOutput, type FetchReport, type JobTiming } from './fetch.machine.js';
import type { FileProvider } from './files.js';
import {
  checkPath,
  isConnectionId,
  type ClientMessage,
  type FileEntry,
  type MessageOf,
  type ServerMessage,
} from './protocol.js';
import { registryServe, type ServeOutput } from './serve.machine.js';
import { describeError, listFiles } from './transfer.js';

export type ClientSignallingCommand = SignallingCommand<ClientMessage>;

export const SIGNALLING_HINT =
  "use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport('wss://…/registry'), registry.clientCodec()) } })";
export const RTC_HINT =
  'use machine.provide({ actors: { rtc: fromRtc({ RTCPeerConnection, trickle: true }) } }) with the browser global, werift or node-datachannel';

export interface RegistryClientInput extends Partial<JobTiming> {
  /** Serves requested files, and lists them unless `files` is given. */
  provider: FileProvider;
  /** The list to announce in `Connect`. @default provider.list() */
  files?: FileEntry[];
  /** Most file connections served at once; offers beyond it are ignored (the requester times out). @default 16 */
  maxServing?: number;
  /**
   * The server's limits on one list (entries, and characters of the
   * `Connect` / `UpdateFiles` frame): a list over them is refused here,
   * before anything is sent, with `invalid-files`.
   * @default { maxFiles: 1000, maxFrameSize: 262144 } (the server's defaults)
   */
  listLimits?: Partial<ListLimits>;
}

/** Commands the application sends a registry client. */
export type RegistryClientCommand =
  /**
   * Announce a new list (`UpdateFiles`); without `files`, ask the provider
   * again. Before the server welcomed us, the last one is kept and applied
   * once it has.
   */
  | { type: 'updateFiles'; files?: FileEntry[] }
  /**
   * Fetch `path` from `peer` over a data channel of its own. `request` names
   * it in the events that follow (1 to 64 characters of `A-Z a-z 0-9 _ -`;
   * a counter by default) and is the connection id on the wire.
   */
  | { type: 'requestFile'; peer: string; path: string; sink: SinkOpener; request?: string }
  /** Cancel one request (by `request`). */
  | { type: 'cancel'; request: string }
  /** `Disconnect` from the server and stop. */
  | { type: 'leave' };

/** One running file connection. */
export interface Job {
  kind: 'fetch' | 'serve';
  peer: string;
  /** The connection id on the wire (the requester's `request`). */
  connection: string;
  /** Fetch: the path asked for. */
  path?: string;
}

export interface RegistryClientContext {
  readonly provider: FileProvider;
  readonly timing: JobTiming;
  readonly maxServing: number;
  readonly limits: ListLimits;
  /** Our server-assigned id, from `Welcome`. */
  id?: string;
  /** What we list. */
  files: FileEntry[];
  /** Files given in the input, not yet checked. */
  pending?: FileEntry[];
  /** The last `updateFiles` before `Welcome`: applied once registered. */
  deferred?: Extract<RegistryClientCommand, { type: 'updateFiles' }>;
  /** Every other registered peer and its list. */
  peers: Record<string, FileEntry[]>;
  /** Running file connections, by key (`fetch:<connection>@<peer>` or `serve:<connection>@<peer>`). */
  jobs: Record<string, Job>;
  /** Counts requests, for default request ids. */
  counter: number;
  error?: RegistryError;
}

type ChildDone = DoneActorEvent<FetchOutput | ServeOutput>;

export type RegistryClientEvent =
  ServerMessage | SignallingEvent | RtcEmitted | FetchReport | RegistryClientCommand | ChildDone | ErrorActorEvent;

/** Emitted by a registry client (subscribe with `actor.on(type, …)`, or as DOM events with `dispatchEmitted`). */
export type RegistryClientEmitted =
  /** `Welcome` arrived: `id` is this client's peer id. */
  | { type: 'registered'; detail: { id: string } }
  /** A peer registered (or was there before us), with its list. */
  | { type: 'peerRegistered'; detail: { peer: string; files: FileEntry[] } }
  /** A peer announced a new list. */
  | { type: 'peerUpdated'; detail: { peer: string; files: FileEntry[] } }
  /** A peer left (Disconnect or its socket closed). */
  | { type: 'peerUnregistered'; detail: { peer: string } }
  /** Every peer and its list, after any of the three above. */
  | { type: 'peers'; detail: { peers: Record<string, FileEntry[]> } }
  /** Our list was announced (`Connect` or `UpdateFiles`). */
  | { type: 'filesUpdated'; detail: { files: FileEntry[] } }
  /** A new list was refused (malformed, over the server's limits, refused by the server, or the provider failed). */
  | { type: 'filesFailed'; detail: { error: RegistryError } }
  | { type: 'progress'; detail: { request: string; peer: string; path: string; received: number; total: number } }
  /** A requested file arrived, verified (size and SHA-256), and its sink was closed. */
  | { type: 'fetched'; detail: { request: string; peer: string; path: string; size: number; sha256: string } }
  | { type: 'fetchFailed'; detail: { request: string; peer: string; path: string; error: RegistryError } }
  /** A peer got one of our files. */
  | { type: 'served'; detail: { peer: string; path: string } }
  | { type: 'serveFailed'; detail: { peer: string; path?: string; error: RegistryError } }
  /** The server refused something we sent (a race, such as an Offer to a peer that just left). */
  | { type: 'refused'; detail: { code: string; message: string; event?: string } }
  /** The client stopped: `error` is set unless it was asked to leave. */
  | { type: 'stopped'; detail: { error?: RegistryError } };

const send = (message: ClientMessage): ClientSignallingCommand => ({ type: 'signalling.send', message });
const keyOf = (kind: Job['kind'], connection: string, peer: string) => `${kind}:${connection}@${peer}`;
const jobId = (key: string) => `job:${key}`;
const rtcId = (key: string) => `rtc:${key}`;
type Detail = { detail: { peer: string; connection: string } };
type Request = Extract<RegistryClientCommand, { type: 'requestFile' }>;

/** The request id a `requestFile` gets. */
const requestOf = (context: RegistryClientContext, event: Request) => event.request ?? `r${context.counter + 1}`;

/** Why a `requestFile` cannot start, or undefined. */
function refuseRequest(context: RegistryClientContext, event: Request): RegistryError | undefined {
  const request = requestOf(context, event);
  if (!isConnectionId(request)) {
    return new RegistryError('protocol', `request id ${JSON.stringify(request)}: 1 to 64 of A-Z a-z 0-9 _ -`);
  }
  if (keyOf('fetch', request, event.peer) in context.jobs) {
    return new RegistryError('protocol', `request ${request} to ${event.peer} is running already`);
  }
  const problem = checkPath(event.path);
  if (problem)
    return new RegistryError('invalid-path', `${JSON.stringify(String(event.path).slice(0, 256))}: ${problem}`);
  // Own keys only: a peer id typed by a user may be `constructor` or `__proto__`.
  const files = Object.hasOwn(context.peers, event.peer) ? context.peers[event.peer] : undefined;
  if (!files) return new RegistryError('no-such-peer', `no peer ${event.peer} is registered`);
  if (!files.some((file) => file.path === event.path)) {
    return new RegistryError('not-listed', `${event.peer} does not list ${JSON.stringify(event.path)}`);
  }
  return undefined;
}

/** The client's error when its signalling connection ends or misbehaves. */
function signallingError(event: { type: string; error?: unknown; info?: { code: number; reason: string } }) {
  if (event.type === 'signalling.closed') {
    const error = event.error as SignalboxError | undefined;
    return new RegistryError(
      'signalling-lost',
      error?.message ?? `signalling closed (${event.info!.code} ${event.info!.reason})`.trim(),
      error ? { code: error.code, cause: error } : {},
    );
  }
  if (event.type === 'signalling.error') {
    const error = event.error as SignalboxError;
    return new RegistryError('protocol', `the server sent a bad frame: ${error.message}`, {
      code: error.code,
      cause: error,
    });
  }
  const error = event.error;
  return new RegistryError('signalling-lost', error instanceof Error ? error.message : String(error), {
    code: error instanceof SignalboxError ? error.code : ErrorCode.ConnectFailed,
    cause: error,
  });
}

/**
 * A registry client: it registers its file list with the server
 * (`Connect`), keeps every other peer's list as the server announces them
 * (`RegisterPeer`, `UpdatePeer`, `UnregisterPeer`), announces its own
 * changes (`UpdateFiles`), fetches files straight from other peers
 * (`requestFile`: one WebRTC data channel per request, signalled through
 * the server) and serves its own files to peers that ask, through its
 * {@link FileProvider}. `leave` sends `Disconnect`.
 *
 * Provide `signalling` (a transport to the server's `/registry` with
 * `clientCodec()`) and `rtc` (`fromRtc({ RTCPeerConnection, trickle: true })`).
 */
export const registryClient = setup({
  types: {
    context: {} as RegistryClientContext,
    events: {} as RegistryClientEvent,
    input: {} as RegistryClientInput,
    emitted: {} as RegistryClientEmitted,
  },
  actors: {
    signalling: missingActor<ClientSignallingCommand>('signalling', SIGNALLING_HINT),
    rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
    listFiles,
    fetch: registryFetch,
    serve: registryServe,
  },
  guards: {
    hasFiles: ({ event }) => (event as Extract<RegistryClientCommand, { type: 'updateFiles' }>).files !== undefined,
    hasValidFiles: ({ context, event }) =>
      checkOutgoingList((event as Extract<RegistryClientCommand, { type: 'updateFiles' }>).files, context.limits) ===
      undefined,
    /** The server refused our `UpdateFiles` (a frame over its cap carries no `event`: only a list can be that large). */
    isListRefusal: ({ event }) => {
      const { code, event: refused } = (event as MessageOf<ServerMessage, 'Error'>).detail;
      return refused === 'UpdateFiles' || (refused === undefined && code === ErrorCode.FrameTooLarge);
    },
    canRequest: ({ context, event }) => refuseRequest(context, event as Request) === undefined,
    isKnownServe: ({ context, event }) => {
      const { peer, connection } = (event as Detail).detail;
      return keyOf('serve', connection, peer) in context.jobs;
    },
    canServe: ({ context, event }) =>
      Object.hasOwn(context.peers, (event as Detail).detail.peer) &&
      Object.values(context.jobs).filter((job) => job.kind === 'serve').length < context.maxServing,
    isRunningJob: ({ context, event }) => (event as FetchReport).key in context.jobs,
    isJobDone: ({ context, event }) => {
      const id = (event as ChildDone).actorId ?? '';
      return id.startsWith('job:') && id.slice(4) in context.jobs;
    },
    isJobCrash: ({ context, event }) => {
      const id = (event as ErrorActorEvent).actorId ?? '';
      return /^(job|rtc):/.test(id) && id.slice(4) in context.jobs;
    },
  },
  actions: {
    recordSignallingError: assign({ error: ({ event }) => signallingError(event as never) }),
    recordServerRefusal: assign({
      error: ({ event }) => serverRefusal(event as MessageOf<ServerMessage, 'Error'>, 'Connect'),
    }),
    recordListFailure: assign({ error: ({ event }) => asRegistryError((event as ErrorActorEvent).error) }),
    keepFiles: assign({
      files: ({ event }) => (event as unknown as DoneActorEvent<FileEntry[]>).output,
      pending: undefined,
    }),
    sendConnect: enqueueActions(({ context, enqueue }) => {
      enqueue.sendTo('signalling', send({ type: 'Connect', detail: { files: context.files } }));
    }),
    announceFiles: emit(({ context }) => ({ type: 'filesUpdated' as const, detail: { files: context.files } })),
    publish: enqueueActions(({ event, enqueue }) => {
      const files =
        event.type === 'updateFiles'
          ? copyFiles(event.files!)
          : (event as unknown as DoneActorEvent<FileEntry[]>).output;
      enqueue.assign({ files });
      enqueue.sendTo('signalling', send({ type: 'UpdateFiles', detail: { files } }));
      enqueue.emit({ type: 'filesUpdated', detail: { files } });
    }),
    refuseFiles: emit(({ context, event }) => {
      let error: RegistryError;
      if (event.type === 'updateFiles') {
        error = new RegistryError(
          'invalid-files',
          checkOutgoingList(event.files, context.limits) ?? 'invalid file list',
        );
      } else if (event.type === 'Error') {
        error = serverRefusal(event, 'UpdateFiles');
      } else error = asRegistryError((event as ErrorActorEvent).error);
      return { type: 'filesFailed' as const, detail: { error } };
    }),
    deferUpdate: assign({ deferred: ({ event }) => event as Extract<RegistryClientCommand, { type: 'updateFiles' }> }),
    /** The `updateFiles` kept from before `Welcome`, if any, handled now as if just sent. */
    replayUpdate: enqueueActions(({ context, enqueue }) => {
      if (!context.deferred) return;
      enqueue.assign({ deferred: undefined });
      enqueue.raise(context.deferred);
    }),
    welcome: enqueueActions(({ event, enqueue }) => {
      const { id } = (event as MessageOf<ServerMessage, 'Welcome'>).detail;
      enqueue.assign({ id });
      enqueue.emit({ type: 'registered', detail: { id } });
    }),
    storePeer: enqueueActions(({ context, event, enqueue }) => {
      const { peer, files } = (event as MessageOf<ServerMessage, 'RegisterPeer' | 'UpdatePeer'>).detail;
      const peers = { ...context.peers, [peer]: files };
      enqueue.assign({ peers });
      enqueue.emit(
        event.type === 'RegisterPeer'
          ? { type: 'peerRegistered', detail: { peer, files } }
          : { type: 'peerUpdated', detail: { peer, files } },
      );
      enqueue.emit({ type: 'peers', detail: { peers } });
    }),
    removePeer: enqueueActions(({ context, event, enqueue }) => {
      const { peer } = (event as MessageOf<ServerMessage, 'UnregisterPeer'>).detail;
      const { [peer]: _gone, ...peers } = context.peers;
      enqueue.assign({ peers });
      for (const [key, job] of Object.entries(context.jobs)) {
        if (job.peer === peer) enqueue.sendTo(jobId(key), { type: 'peer.gone' });
      }
      enqueue.emit({ type: 'peerUnregistered', detail: { peer } });
      enqueue.emit({ type: 'peers', detail: { peers } });
    }),
    startFetch: enqueueActions(({ context, event, enqueue }) => {
      const request = event as Request;
      const connection = requestOf(context, request);
      const key = keyOf('fetch', connection, request.peer);
      const expected = context.peers[request.peer]!.find((file) => file.path === request.path)!;
      enqueue.assign({
        counter: context.counter + 1,
        jobs: { ...context.jobs, [key]: { kind: 'fetch', peer: request.peer, connection, path: request.path } },
      });
      enqueue.spawnChild('rtc', { id: rtcId(key), input: { label: key, role: 'offerer' } satisfies RtcInput });
      enqueue.spawnChild('fetch', {
        id: jobId(key),
        input: { key, peer: request.peer, path: request.path, expected, sink: request.sink, ...context.timing },
      });
    }),
    refuseFetch: emit(({ context, event }) => {
      const request = event as Request;
      return {
        type: 'fetchFailed' as const,
        detail: {
          request: requestOf(context, request),
          peer: request.peer,
          path: request.path,
          error: refuseRequest(context, request)!,
        },
      };
    }),
    startServe: enqueueActions(({ context, event, enqueue }) => {
      const { peer, connection, sdp } = (event as MessageOf<ServerMessage, 'Offer'>).detail;
      const key = keyOf('serve', connection, peer);
      enqueue.assign({ jobs: { ...context.jobs, [key]: { kind: 'serve', peer, connection } } });
      enqueue.spawnChild('rtc', {
        id: rtcId(key),
        input: { label: key, role: 'answerer', remoteOffer: sdp } satisfies RtcInput,
      });
      enqueue.spawnChild('serve', {
        id: jobId(key),
        input: { key, peer, provider: context.provider, files: context.files, ...context.timing },
      });
    }),
    /** A new offer on a connection we serve (an ICE restart): to its rtc actor. */
    reoffer: enqueueActions(({ event, enqueue }) => {
      const { peer, connection, sdp } = (event as MessageOf<ServerMessage, 'Offer'>).detail;
      enqueue.sendTo(rtcId(keyOf('serve', connection, peer)), {
        type: 'rtc.remoteDescription',
        description: { type: 'offer', sdp },
      } satisfies RtcCommand);
    }),
    applyAnswer: enqueueActions(({ context, event, enqueue }) => {
      const { peer, connection, sdp } = (event as MessageOf<ServerMessage, 'Answer'>).detail;
      const key = keyOf('fetch', connection, peer);
      if (!(key in context.jobs)) return;
      enqueue.sendTo(rtcId(key), {
        type: 'rtc.remoteDescription',
        description: { type: 'answer', sdp },
      } satisfies RtcCommand);
    }),
    applyCandidate: enqueueActions(({ context, event, enqueue }) => {
      const { peer, connection, from, candidate } = (event as MessageOf<ServerMessage, 'Candidate'>).detail;
      // The requester's candidates go to the connection we serve, the holder's to the one we fetch on.
      const key = keyOf(from === 'requester' ? 'serve' : 'fetch', connection, peer);
      if (!(key in context.jobs)) return;
      enqueue.sendTo(rtcId(key), { type: 'rtc.remoteCandidate', candidate } satisfies RtcCommand);
    }),
    sendSignal: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<RtcEmitted, { type: 'rtc.description' | 'rtc.candidate' }>;
      const job = context.jobs[e.label];
      if (!job) return;
      const { peer, connection } = job;
      if (e.type === 'rtc.candidate') {
        const from = job.kind === 'fetch' ? 'requester' : 'holder';
        enqueue.sendTo(
          'signalling',
          send({ type: 'Candidate', detail: { peer, connection, from, candidate: e.candidate } }),
        );
      } else {
        const type = e.description.type === 'offer' ? 'Offer' : 'Answer';
        enqueue.sendTo('signalling', send({ type, detail: { peer, connection, sdp: e.description.sdp } }));
      }
    }),
    /** What an rtc actor reports about its channel goes to its job. */
    forwardRtc: enqueueActions(({ context, event, enqueue }) => {
      const { label } = event as RtcEmitted;
      if (label in context.jobs) enqueue.sendTo(jobId(label), event as never);
    }),
    announceProgress: emit(({ context, event }) => {
      const { key, received, total } = event as FetchReport;
      const job = context.jobs[key]!;
      return {
        type: 'progress' as const,
        detail: { request: job.connection, peer: job.peer, path: job.path!, received, total },
      };
    }),
    cancelOne: enqueueActions(({ context, event, enqueue }) => {
      const { request } = event as Extract<RegistryClientCommand, { type: 'cancel' }>;
      for (const [key, job] of Object.entries(context.jobs)) {
        if (job.kind === 'fetch' && job.connection === request) enqueue.sendTo(jobId(key), { type: 'cancel' });
      }
    }),
    endJob: enqueueActions(({ context, event, enqueue }) => {
      const { actorId, output } = event as ChildDone;
      const key = actorId!.slice(4);
      const job = context.jobs[key]!;
      enqueue.stopChild(actorId!);
      enqueue.stopChild(rtcId(key));
      const { [key]: _done, ...jobs } = context.jobs;
      enqueue.assign({ jobs });
      if (job.kind === 'fetch') {
        const { error, size, sha256 } = output as FetchOutput;
        const base = { request: job.connection, peer: job.peer, path: job.path! };
        enqueue.emit(
          error
            ? { type: 'fetchFailed', detail: { ...base, error } }
            : { type: 'fetched', detail: { ...base, size, sha256: sha256! } },
        );
      } else {
        const { error, path } = output as ServeOutput;
        enqueue.emit(
          error
            ? { type: 'serveFailed', detail: { peer: job.peer, ...(path !== undefined && { path }), error } }
            : { type: 'served', detail: { peer: job.peer, path: path! } },
        );
      }
    }),
    /** A job or its rtc actor crashed: the other one goes too, and the request fails. */
    dropJob: enqueueActions(({ context, event, enqueue }) => {
      const { actorId, error } = event as ErrorActorEvent;
      const key = actorId!.slice(4);
      const job = context.jobs[key]!;
      enqueue.stopChild(jobId(key));
      enqueue.stopChild(rtcId(key));
      const { [key]: _gone, ...jobs } = context.jobs;
      enqueue.assign({ jobs });
      const failure = new RegistryError(
        'rtc-failed',
        `the ${actorId!.slice(0, 3)} actor crashed: ${describeError(error)}`,
        {
          cause: error,
        },
      );
      enqueue.emit(
        job.kind === 'fetch'
          ? {
              type: 'fetchFailed',
              detail: { request: job.connection, peer: job.peer, path: job.path!, error: failure },
            }
          : { type: 'serveFailed', detail: { peer: job.peer, error: failure } },
      );
    }),
    announceRefusal: emit(({ event }) => ({
      type: 'refused' as const,
      detail: (event as MessageOf<ServerMessage, 'Error'>).detail,
    })),
    sendDisconnect: enqueueActions(({ enqueue }) =>
      enqueue.sendTo('signalling', send({ type: 'Disconnect', detail: undefined })),
    ),
    /**
     * The client stopped with transfers running: each fails (with the client's
     * error, or `cancelled` on `leave`), and is told `cancel` first, so it aborts
     * its sink or closes its source before it is stopped.
     */
    abandonJobs: enqueueActions(({ context, enqueue }) => {
      const error = context.error ?? new RegistryError('cancelled', 'the client left');
      for (const [key, job] of Object.entries(context.jobs)) {
        enqueue.sendTo(jobId(key), { type: 'cancel' });
        enqueue.emit(
          job.kind === 'fetch'
            ? { type: 'fetchFailed', detail: { request: job.connection, peer: job.peer, path: job.path!, error } }
            : { type: 'serveFailed', detail: { peer: job.peer, error } },
        );
      }
      enqueue.assign({ jobs: {} });
    }),
    announceStop: emit(({ context }) => ({ type: 'stopped' as const, detail: { error: context.error } })),
  },
}).createMachine({
  id: 'registryClient',
  context: ({ input }) => ({
    provider: input.provider,
    pending: input.files,
    timing: {
      connectTimeout: input.connectTimeout ?? 30_000,
      responseTimeout: input.responseTimeout ?? 15_000,
      lingerTimeout: input.lingerTimeout ?? 10_000,
    },
    maxServing: input.maxServing ?? 16,
    limits: { maxFiles: input.listLimits?.maxFiles ?? 1000, maxFrameSize: input.listLimits?.maxFrameSize ?? 262_144 },
    files: [],
    peers: {},
    jobs: {},
    counter: 0,
  }),
  initial: 'listing',
  states: {
    // The list comes first: the server gives a connection only `connectTimeout` to send `Connect`.
    listing: {
      invoke: {
        id: 'listFiles',
        src: 'listFiles',
        input: ({ context }) => ({ files: context.pending, provider: context.provider, limits: context.limits }),
        onDone: { target: 'active', actions: 'keepFiles' },
        onError: { target: 'failed', actions: 'recordListFailure' },
      },
      on: {
        leave: 'done',
        requestFile: { actions: 'refuseFetch' },
        updateFiles: { actions: 'deferUpdate' },
      },
    },
    active: {
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        'signalling.closed': { target: 'failed', actions: 'recordSignallingError' },
        'signalling.error': { target: 'failed', actions: 'recordSignallingError' },
        'xstate.error.actor.signalling': { target: 'failed', actions: 'recordSignallingError' },
        leave: '.leaving',
        requestFile: { actions: 'refuseFetch' },
      },
      initial: 'registering',
      states: {
        registering: {
          entry: 'sendConnect',
          on: {
            Welcome: { target: 'ready', actions: ['welcome', 'announceFiles', 'replayUpdate'] },
            // The server refused our Connect (a list over its limits, say).
            Error: { target: '#registryClient.failed', actions: 'recordServerRefusal' },
            updateFiles: { actions: 'deferUpdate' },
          },
        },
        ready: {
          on: {
            RegisterPeer: { actions: 'storePeer' },
            UpdatePeer: { actions: 'storePeer' },
            UnregisterPeer: { actions: 'removePeer' },
            requestFile: [{ guard: 'canRequest', actions: 'startFetch' }, { actions: 'refuseFetch' }],
            cancel: { actions: 'cancelOne' },
            Offer: [
              { guard: 'isKnownServe', actions: 'reoffer' },
              { guard: 'canServe', actions: 'startServe' },
            ],
            Answer: { actions: 'applyAnswer' },
            Candidate: { actions: 'applyCandidate' },
            'rtc.description': { actions: 'sendSignal' },
            'rtc.candidate': { actions: 'sendSignal' },
            'rtc.open': { actions: 'forwardRtc' },
            'rtc.failed': { actions: 'forwardRtc' },
            'rtc.closed': { actions: 'forwardRtc' },
            'job.progress': { guard: 'isRunningJob', actions: 'announceProgress' },
            'xstate.done.actor.*': { guard: 'isJobDone', actions: 'endJob' },
            'xstate.error.actor.*': { guard: 'isJobCrash', actions: 'dropJob' },
            Error: [{ guard: 'isListRefusal', actions: 'refuseFiles' }, { actions: 'announceRefusal' }],
          },
          initial: 'idle',
          states: {
            idle: {
              on: {
                updateFiles: [
                  { guard: and(['hasFiles', 'hasValidFiles']), actions: 'publish' },
                  { guard: 'hasFiles', actions: 'refuseFiles' },
                  { target: 'relisting' },
                ],
              },
            },
            relisting: {
              invoke: {
                id: 'relist',
                src: 'listFiles',
                input: ({ context }) => ({ provider: context.provider, limits: context.limits }),
                onDone: { target: 'idle', actions: 'publish' },
                onError: { target: 'idle', actions: 'refuseFiles' },
              },
              on: {
                updateFiles: [
                  // A list given while the provider is asked wins: the provider's answer is dropped.
                  { guard: and(['hasFiles', 'hasValidFiles']), target: 'idle', actions: 'publish' },
                  { guard: 'hasFiles', actions: 'refuseFiles' },
                  // Asked again: the files may have changed since the provider started listing.
                  { target: 'relisting', reenter: true },
                ],
              },
            },
          },
        },
        // `Disconnect` goes out before leaving `active` stops the signalling actor.
        leaving: { entry: 'sendDisconnect', always: '#registryClient.done' },
      },
    },
    done: { type: 'final', entry: ['abandonJobs', 'announceStop'] },
    failed: { type: 'final', entry: ['abandonJobs', 'announceStop'] },
  },
});

function asRegistryError(error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  return new RegistryError('source-failed', describeError(error), { cause: error });
}

/**
 * The server's `Error` for a list we sent: `invalid-files` when it is about
 * the list (a field, or the frame's size), else `protocol`; the server's
 * code is kept when it is one of ours.
 */
function serverRefusal({ detail }: MessageOf<ServerMessage, 'Error'>, sent: 'Connect' | 'UpdateFiles'): RegistryError {
  const { code, message } = detail;
  const aboutList = code === ErrorCode.InvalidField || code === ErrorCode.FrameTooLarge;
  return new RegistryError(aboutList ? 'invalid-files' : 'protocol', `the server refused ${sent}: ${message}`, {
    code: errorCodeOf(code),
  });
}
