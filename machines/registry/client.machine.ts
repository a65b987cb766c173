import { assertEvent, assign, emit, enqueueActions, setup, type DoneActorEvent, type ErrorActorEvent } from 'xstate';
import { ErrorCode, errorCodeOf, SignalboxError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import { readCandidate, readDescription, wireProblem } from '../../src/rtc/wire.js';
import type { SinkOpener } from '../transfer/files.js';
import { checkOutgoingList, copyFiles, type ListLimits } from './codec.js';
import { RegistryError } from './errors.js';
import { registryFetch, type FetchOutput, type FetchReport, type JobCommand, type JobTiming } from './fetch.machine.js';
import type { FileProvider } from './files.js';
import {
  checkPath,
  isConnectionId,
  type Announcement,
  type ClientMessage,
  type FileEntry,
  type MessageOf,
  type RelayMessage,
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
  /** How many `RegisterPeer` of the peers already there are still to come after `Welcome`. */
  awaiting: number;
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
  /**
   * The server welcomed us and told us every peer already there (each as
   * `peerRegistered` first): `id` is this client's peer id, and a
   * `requestFile` to any peer registered before us finds it.
   */
  | { type: 'registered'; detail: { id: string } }
  /** A peer registered (or was there before us), with its list. */
  | { type: 'peerRegistered'; detail: { peer: string; files: FileEntry[] } }
  /** A peer announced a new list. */
  | { type: 'peerUpdated'; detail: { peer: string; files: FileEntry[] } }
  /** A peer left (Disconnect or its socket closed). */
  | { type: 'peerUnregistered'; detail: { peer: string } }
  /** Every peer and its list, after the three above, once a frame (a `Batch` of many: once, after them all). */
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
type Request = Extract<RegistryClientCommand, { type: 'requestFile' }>;
type UpdateFiles = Extract<RegistryClientCommand, { type: 'updateFiles' }>;
type Relayed<T extends RelayMessage['type']> = MessageOf<ServerMessage, T>['detail'];
type ServerRefusal = MessageOf<ServerMessage, 'Error'>['detail'];
type RtcSignal = Extract<RtcEmitted, { type: 'rtc.description' | 'rtc.candidate' }>;
type RtcReport = Extract<RtcEmitted, { type: 'rtc.open' | 'rtc.failed' | 'rtc.closed' }>;

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
function signallingError(
  event: Extract<SignallingEvent, { type: 'signalling.closed' | 'signalling.error' }> | ErrorActorEvent,
) {
  if (event.type === 'signalling.closed') {
    const { error, info } = event;
    return new RegistryError(
      'signalling-lost',
      error?.message ?? `signalling closed (${info.code} ${info.reason})`.trim(),
      error ? { code: error.code, cause: error } : {},
    );
  }
  if (event.type === 'signalling.error') {
    const { error } = event;
    return new RegistryError('protocol', `the server sent a bad frame: ${error.message}`, {
      code: error.code,
      cause: error,
    });
  }
  const { error } = event;
  return new RegistryError('signalling-lost', error instanceof Error ? error.message : String(error), {
    code: error instanceof SignalboxError ? error.code : ErrorCode.ConnectFailed,
    cause: error,
  });
}

/** A relayed payload this client cannot read: the job on that connection ends with it. */
const unreadable = (
  type: RelayMessage['type'],
  peer: string,
  problem: string,
): Extract<JobCommand, { type: 'signal.invalid' }> => ({
  type: 'signal.invalid',
  message: `${type} from ${peer}: ${problem}`,
});

/**
 * Where a relayed description of job `key` goes: to the job's rtc actor, or,
 * when it cannot be read, to the job itself, which ends with it.
 */
function descriptionFor(
  key: string,
  type: 'Offer' | 'Answer',
  peer: string,
  sdp: unknown,
): { to: string; command: RtcCommand | JobCommand } {
  const read = readDescription(sdp, type === 'Offer' ? 'offer' : 'answer', 'sdp');
  return read.problem === undefined
    ? { to: rtcId(key), command: { type: 'rtc.remoteDescription', description: read.value } }
    : { to: jobId(key), command: unreadable(type, peer, wireProblem(read)) };
}

/**
 * The registry client's types and named implementations (guards take their
 * event fields as typed `params`, computed at each transition), from which
 * {@link registryClient} is made. Wiring one of them to a transition whose
 * event lacks what it reads does not compile (`test/registry-types.test-d.ts`).
 */
/**
 * What announcements do to the client: the peer list after them (copied
 * once, however many there are: a `Batch` of a thousand peers costs one copy
 * of the list, not a thousand), the `RegisterPeer` still awaited, the jobs
 * whose peer left, and what to emit: each announcement's own event, in
 * order, then one `peers` with the whole list, then `registered` if the
 * last awaited peer came.
 */
function announced(
  context: RegistryClientContext,
  events: readonly Announcement[],
): { peers: Record<string, FileEntry[]>; awaiting: number; gone: string[]; emitted: RegistryClientEmitted[] } {
  const peers = { ...context.peers };
  let { awaiting } = context;
  const gone: string[] = [];
  const emitted: RegistryClientEmitted[] = [];
  for (const event of events) {
    const { peer } = event.detail;
    if (event.type === 'UnregisterPeer') {
      delete peers[peer];
      for (const [key, job] of Object.entries(context.jobs)) if (job.peer === peer) gone.push(key);
      emitted.push({ type: 'peerUnregistered', detail: { peer } });
      continue;
    }
    const { files } = event.detail;
    peers[peer] = files;
    emitted.push({ type: event.type === 'RegisterPeer' ? 'peerRegistered' : 'peerUpdated', detail: { peer, files } });
    if (event.type === 'RegisterPeer' && awaiting > 0) awaiting--;
  }
  emitted.push({ type: 'peers', detail: { peers } });
  // The last of the peers that were there before us: now the list is whole.
  if (awaiting === 0 && context.awaiting > 0) emitted.push({ type: 'registered', detail: { id: context.id! } });
  return { peers, awaiting, gone, emitted };
}

export const registryClientSetup = setup({
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
    hasFiles: (_, { files }: { files?: FileEntry[] }) => files !== undefined,
    /** A list was given, and it is clean and within the server's limits. */
    hasValidFiles: ({ context }, { files }: { files?: FileEntry[] }) =>
      files !== undefined && checkOutgoingList(files, context.limits) === undefined,
    /** The server refused our `UpdateFiles` (a frame over its cap carries no `event`: only a list can be that large). */
    isListRefusal: (_, { code, event: refused }: ServerRefusal) =>
      refused === 'UpdateFiles' || (refused === undefined && code === ErrorCode.FrameTooLarge),
    canRequest: ({ context }, request: Request) => refuseRequest(context, request) === undefined,
    isKnownServe: ({ context }, { peer, connection }: { peer: string; connection: string }) =>
      keyOf('serve', connection, peer) in context.jobs,
    canServe: ({ context }, { peer }: { peer: string }) =>
      Object.hasOwn(context.peers, peer) &&
      Object.values(context.jobs).filter((job) => job.kind === 'serve').length < context.maxServing,
    isRunningJob: ({ context }, { key }: { key: string }) => key in context.jobs,
    isJobDone: ({ context }, { actorId }: { actorId?: string }) => {
      const id = actorId ?? '';
      return id.startsWith('job:') && id.slice(4) in context.jobs;
    },
    isJobCrash: ({ context }, { actorId }: { actorId?: string }) => {
      const id = actorId ?? '';
      return /^(job|rtc):/.test(id) && id.slice(4) in context.jobs;
    },
  },
  actions: {
    recordSignallingError: assign({
      error: ({ event }) => {
        assertEvent(event, ['signalling.closed', 'signalling.error', 'xstate.error.actor.signalling']);
        return signallingError(event);
      },
    }),
    recordServerRefusal: assign((_, refusal: ServerRefusal) => ({ error: serverRefusal(refusal, 'Connect') })),
    recordListFailure: assign((_, { error }: { error: unknown }) => ({ error: asRegistryError(error) })),
    keepFiles: assign((_, { files }: { files: FileEntry[] }) => ({ files, pending: undefined })),
    sendConnect: enqueueActions(({ context, enqueue }) => {
      // `batch`: this client reads Batch frames, so its Welcome list may come in a few large ones.
      enqueue.sendTo('signalling', send({ type: 'Connect', detail: { files: context.files, batch: true } }));
    }),
    announceFiles: emit(({ context }) => ({ type: 'filesUpdated' as const, detail: { files: context.files } })),
    /** Announces a list already checked: the one given in `updateFiles`, or the provider's. */
    publish: enqueueActions(({ enqueue }, { files: given }: { files: FileEntry[] }) => {
      const files = copyFiles(given);
      enqueue.assign({ files });
      enqueue.sendTo('signalling', send({ type: 'UpdateFiles', detail: { files } }));
      enqueue.emit({ type: 'filesUpdated', detail: { files } });
    }),
    refuseFiles: emit((_, { error }: { error: RegistryError }) => ({
      type: 'filesFailed' as const,
      detail: { error },
    })),
    deferUpdate: assign((_, update: UpdateFiles) => ({ deferred: update })),
    /** The `updateFiles` kept from before `Welcome`, if any, handled now as if just sent. */
    replayUpdate: enqueueActions(({ context, enqueue }) => {
      if (!context.deferred) return;
      enqueue.assign({ deferred: undefined });
      enqueue.raise(context.deferred);
    }),
    welcome: enqueueActions(({ enqueue }, { id, peers }: MessageOf<ServerMessage, 'Welcome'>['detail']) => {
      // A server that does not say how many peers follow (an older one): registered at once.
      const awaiting = peers ?? 0;
      enqueue.assign({ id, awaiting });
      if (awaiting === 0) enqueue.emit({ type: 'registered', detail: { id } });
    }),
    storePeer: enqueueActions(
      (
        { context, enqueue },
        { type, peer, files }: { type: 'RegisterPeer' | 'UpdatePeer'; peer: string; files: FileEntry[] },
      ) => {
        const outcome = announced(context, [{ type, detail: { peer, files } }]);
        enqueue.assign({ peers: outcome.peers, awaiting: outcome.awaiting });
        for (const event of outcome.emitted) enqueue.emit(event);
      },
    ),
    /** A `Batch`: its announcements in order, as if each had come alone, then one `peers`. */
    unbatch: enqueueActions(({ context, enqueue }, { events }: MessageOf<ServerMessage, 'Batch'>['detail']) => {
      const outcome = announced(context, events);
      enqueue.assign({ peers: outcome.peers, awaiting: outcome.awaiting });
      for (const key of outcome.gone) enqueue.sendTo(jobId(key), { type: 'peer.gone' } satisfies JobCommand);
      for (const event of outcome.emitted) enqueue.emit(event);
    }),
    removePeer: enqueueActions(({ context, enqueue }, { peer }: { peer: string }) => {
      const outcome = announced(context, [{ type: 'UnregisterPeer', detail: { peer } }]);
      enqueue.assign({ peers: outcome.peers });
      for (const key of outcome.gone) enqueue.sendTo(jobId(key), { type: 'peer.gone' } satisfies JobCommand);
      for (const event of outcome.emitted) enqueue.emit(event);
    }),
    startFetch: enqueueActions(({ context, enqueue }, request: Request) => {
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
    refuseFetch: emit(({ context }, request: Request) => ({
      type: 'fetchFailed' as const,
      detail: {
        request: requestOf(context, request),
        peer: request.peer,
        path: request.path,
        error: refuseRequest(context, request)!,
      },
    })),
    startServe: enqueueActions(({ context, enqueue }, { peer, connection, sdp }: Relayed<'Offer'>) => {
      const offer = readDescription(sdp, 'offer', 'sdp');
      if (offer.problem !== undefined) {
        // Nothing was started for it: the failure is all there is to report.
        const error = new RegistryError('protocol', unreadable('Offer', peer, wireProblem(offer)).message);
        enqueue.emit({ type: 'serveFailed', detail: { peer, error } });
        return;
      }
      const key = keyOf('serve', connection, peer);
      enqueue.assign({ jobs: { ...context.jobs, [key]: { kind: 'serve', peer, connection } } });
      enqueue.spawnChild('rtc', {
        id: rtcId(key),
        input: { label: key, role: 'answerer', remoteOffer: offer.value.sdp } satisfies RtcInput,
      });
      enqueue.spawnChild('serve', {
        id: jobId(key),
        input: { key, peer, provider: context.provider, files: context.files, ...context.timing },
      });
    }),
    /** A new offer on a connection we serve (an ICE restart): to its rtc actor. */
    reoffer: enqueueActions(({ enqueue }, { peer, connection, sdp }: Relayed<'Offer'>) => {
      const { to, command } = descriptionFor(keyOf('serve', connection, peer), 'Offer', peer, sdp);
      enqueue.sendTo(to, command);
    }),
    applyAnswer: enqueueActions(({ context, enqueue }, { peer, connection, sdp }: Relayed<'Answer'>) => {
      const key = keyOf('fetch', connection, peer);
      if (!(key in context.jobs)) return;
      const { to, command } = descriptionFor(key, 'Answer', peer, sdp);
      enqueue.sendTo(to, command);
    }),
    applyCandidate: enqueueActions(
      ({ context, enqueue }, { peer, connection, from, candidate }: Relayed<'Candidate'>) => {
        // The requester's candidates go to the connection we serve, the holder's to the one we fetch on.
        const key = keyOf(from === 'requester' ? 'serve' : 'fetch', connection, peer);
        if (!(key in context.jobs)) return;
        const read = readCandidate(candidate, 'candidate');
        if (read.problem !== undefined) enqueue.sendTo(jobId(key), unreadable('Candidate', peer, wireProblem(read)));
        // `null`: the end of the peer's candidates; nothing to apply.
        else if (read.value !== null)
          enqueue.sendTo(rtcId(key), { type: 'rtc.remoteCandidate', candidate: read.value } satisfies RtcCommand);
      },
    ),
    /** Our rtc actors' descriptions and candidates, in the browser's form: `{ type, sdp }`, `RTCIceCandidateInit`. */
    sendSignal: enqueueActions(({ context, enqueue }, signal: RtcSignal) => {
      const job = context.jobs[signal.label];
      if (!job) return;
      const { peer, connection } = job;
      if (signal.type === 'rtc.candidate') {
        const from = job.kind === 'fetch' ? 'requester' : 'holder';
        enqueue.sendTo(
          'signalling',
          send({ type: 'Candidate', detail: { peer, connection, from, candidate: signal.candidate } }),
        );
      } else {
        const { type, sdp } = signal.description;
        enqueue.sendTo(
          'signalling',
          send({ type: type === 'offer' ? 'Offer' : 'Answer', detail: { peer, connection, sdp: { type, sdp } } }),
        );
      }
    }),
    /** What an rtc actor reports about its channel goes to its job. */
    forwardRtc: enqueueActions(({ context, enqueue }, report: RtcReport) => {
      if (report.label in context.jobs) enqueue.sendTo(jobId(report.label), report);
    }),
    announceProgress: emit(({ context }, { key, received, total }: FetchReport) => {
      const job = context.jobs[key]!;
      return {
        type: 'progress' as const,
        detail: { request: job.connection, peer: job.peer, path: job.path!, received, total },
      };
    }),
    cancelOne: enqueueActions(({ context, enqueue }, { request }: { request: string }) => {
      for (const [key, job] of Object.entries(context.jobs)) {
        if (job.kind === 'fetch' && job.connection === request) {
          enqueue.sendTo(jobId(key), { type: 'cancel' } satisfies JobCommand);
        }
      }
    }),
    endJob: enqueueActions(({ context, enqueue }, { actorId, output }: ChildDone) => {
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
    dropJob: enqueueActions(({ context, enqueue }, { actorId, error }: ErrorActorEvent) => {
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
    announceRefusal: emit((_, detail: ServerRefusal) => ({ type: 'refused' as const, detail })),
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
        enqueue.sendTo(jobId(key), { type: 'cancel' } satisfies JobCommand);
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
});

/**
 * A registry client: it registers its file list with the server
 * (`Connect`), keeps every other peer's list as the server announces them
 * (`RegisterPeer`, `UpdatePeer`, `UnregisterPeer`), announces its own
 * changes (`UpdateFiles`), fetches files straight from other peers
 * (`requestFile`: one WebRTC data channel per request, signalled through
 * the server) and serves its own files to peers that ask, through its
 * {@link FileProvider}. `leave` sends `Disconnect`.
 *
 * It sends descriptions as `{ type, sdp }` and candidates as
 * `RTCIceCandidateInit`, and reads what other implementations send too (an
 * SDP string, a candidate string, `null` for the end of candidates); a
 * payload it cannot read ends that transfer with `protocol`.
 *
 * `registered` is emitted once the server welcomed it and told it every
 * peer already there (`Welcome`'s `peers` count of `RegisterPeer`).
 *
 * Provide `signalling` (a transport to the server's `/registry` with
 * `clientCodec()`) and `rtc` (`fromRtc({ RTCPeerConnection, trickle: true })`).
 */
export const registryClient = registryClientSetup.createMachine({
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
    awaiting: 0,
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
        onDone: { target: 'active', actions: { type: 'keepFiles', params: ({ event }) => ({ files: event.output }) } },
        onError: { target: 'failed', actions: { type: 'recordListFailure', params: ({ event }) => event } },
      },
      on: {
        leave: 'done',
        requestFile: { actions: { type: 'refuseFetch', params: ({ event }) => event } },
        updateFiles: { actions: { type: 'deferUpdate', params: ({ event }) => event } },
      },
    },
    active: {
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        'signalling.closed': { target: 'failed', actions: 'recordSignallingError' },
        'signalling.error': { target: 'failed', actions: 'recordSignallingError' },
        'xstate.error.actor.signalling': { target: 'failed', actions: 'recordSignallingError' },
        leave: '.leaving',
        requestFile: { actions: { type: 'refuseFetch', params: ({ event }) => event } },
      },
      initial: 'registering',
      states: {
        registering: {
          entry: 'sendConnect',
          on: {
            Welcome: {
              target: 'ready',
              actions: [{ type: 'welcome', params: ({ event }) => event.detail }, 'announceFiles', 'replayUpdate'],
            },
            // The server refused our Connect (a list over its limits, say).
            Error: {
              target: '#registryClient.failed',
              actions: { type: 'recordServerRefusal', params: ({ event }) => event.detail },
            },
            updateFiles: { actions: { type: 'deferUpdate', params: ({ event }) => event } },
          },
        },
        ready: {
          on: {
            RegisterPeer: {
              actions: { type: 'storePeer', params: ({ event }) => ({ type: event.type, ...event.detail }) },
            },
            UpdatePeer: {
              actions: { type: 'storePeer', params: ({ event }) => ({ type: event.type, ...event.detail }) },
            },
            UnregisterPeer: { actions: { type: 'removePeer', params: ({ event }) => event.detail } },
            // Each announcement of a batch is handled as if it had come alone, in order, before any later frame.
            Batch: { actions: { type: 'unbatch', params: ({ event }) => event.detail } },
            requestFile: [
              {
                guard: { type: 'canRequest', params: ({ event }) => event },
                actions: { type: 'startFetch', params: ({ event }) => event },
              },
              { actions: { type: 'refuseFetch', params: ({ event }) => event } },
            ],
            cancel: { actions: { type: 'cancelOne', params: ({ event }) => event } },
            Offer: [
              {
                guard: { type: 'isKnownServe', params: ({ event }) => event.detail },
                actions: { type: 'reoffer', params: ({ event }) => event.detail },
              },
              {
                guard: { type: 'canServe', params: ({ event }) => event.detail },
                actions: { type: 'startServe', params: ({ event }) => event.detail },
              },
            ],
            Answer: { actions: { type: 'applyAnswer', params: ({ event }) => event.detail } },
            Candidate: { actions: { type: 'applyCandidate', params: ({ event }) => event.detail } },
            'rtc.description': { actions: { type: 'sendSignal', params: ({ event }) => event } },
            'rtc.candidate': { actions: { type: 'sendSignal', params: ({ event }) => event } },
            'rtc.open': { actions: { type: 'forwardRtc', params: ({ event }) => event } },
            'rtc.failed': { actions: { type: 'forwardRtc', params: ({ event }) => event } },
            'rtc.closed': { actions: { type: 'forwardRtc', params: ({ event }) => event } },
            'job.progress': {
              guard: { type: 'isRunningJob', params: ({ event }) => event },
              actions: { type: 'announceProgress', params: ({ event }) => event },
            },
            'xstate.done.actor.*': {
              guard: { type: 'isJobDone', params: ({ event }) => event },
              actions: { type: 'endJob', params: ({ event }) => event },
            },
            'xstate.error.actor.*': {
              guard: { type: 'isJobCrash', params: ({ event }) => event },
              actions: { type: 'dropJob', params: ({ event }) => event },
            },
            Error: [
              {
                guard: { type: 'isListRefusal', params: ({ event }) => event.detail },
                actions: {
                  type: 'refuseFiles',
                  params: ({ event }) => ({ error: serverRefusal(event.detail, 'UpdateFiles') }),
                },
              },
              { actions: { type: 'announceRefusal', params: ({ event }) => event.detail } },
            ],
          },
          initial: 'idle',
          states: {
            idle: {
              on: {
                updateFiles: [
                  {
                    guard: { type: 'hasValidFiles', params: ({ event }) => event },
                    actions: { type: 'publish', params: ({ event }) => ({ files: event.files! }) },
                  },
                  {
                    guard: { type: 'hasFiles', params: ({ event }) => event },
                    actions: { type: 'refuseFiles', params: ({ context, event }) => invalidFiles(context, event) },
                  },
                  { target: 'relisting' },
                ],
              },
            },
            relisting: {
              invoke: {
                id: 'relist',
                src: 'listFiles',
                input: ({ context }) => ({ provider: context.provider, limits: context.limits }),
                onDone: {
                  target: 'idle',
                  actions: { type: 'publish', params: ({ event }) => ({ files: event.output }) },
                },
                onError: {
                  target: 'idle',
                  actions: { type: 'refuseFiles', params: ({ event }) => ({ error: asRegistryError(event.error) }) },
                },
              },
              on: {
                updateFiles: [
                  // A list given while the provider is asked wins: the provider's answer is dropped.
                  {
                    guard: { type: 'hasValidFiles', params: ({ event }) => event },
                    target: 'idle',
                    actions: { type: 'publish', params: ({ event }) => ({ files: event.files! }) },
                  },
                  {
                    guard: { type: 'hasFiles', params: ({ event }) => event },
                    actions: { type: 'refuseFiles', params: ({ context, event }) => invalidFiles(context, event) },
                  },
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

/** Why a list given in `updateFiles` is refused. */
function invalidFiles(context: RegistryClientContext, { files }: UpdateFiles): { error: RegistryError } {
  return {
    error: new RegistryError('invalid-files', checkOutgoingList(files, context.limits) ?? 'invalid file list'),
  };
}

function asRegistryError(error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  return new RegistryError('source-failed', describeError(error), { cause: error });
}

/**
 * The server's `Error` for a list we sent: `invalid-files` when it is about
 * the list (a field, or the frame's size), else `protocol`; the server's
 * code is kept when it is one of ours.
 */
function serverRefusal({ code, message }: ServerRefusal, sent: 'Connect' | 'UpdateFiles'): RegistryError {
  const aboutList = code === ErrorCode.InvalidField || code === ErrorCode.FrameTooLarge;
  return new RegistryError(aboutList ? 'invalid-files' : 'protocol', `the server refused ${sent}: ${message}`, {
    code: errorCodeOf(code),
  });
}
