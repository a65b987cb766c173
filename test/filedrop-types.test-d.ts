/**
 * Type tests for the filedrop machines, checked by `npx tsc --noEmit` (this
 * file is compiled, never run). Each action or guard that reads a field of its
 * event is given that field as typed `params`, computed at the transition, so
 * one wired to a transition whose event lacks the field does not compile.
 * Each `@ts-expect-error` fails the typecheck if the line below it compiles.
 */
import type { ErrorActorEvent } from 'xstate';
import { filedropReceiverSetup, type ReceiverContext } from '../machines/filedrop/receiver.machine.js';
import {
  filedropSenderSetup,
  filedropSenderTransferSetup,
  type SenderContext,
  type TransferContext,
} from '../machines/filedrop/sender.machine.js';

// Only the types matter here.
const receiverContext = {} as ReceiverContext;
const senderContext = {} as SenderContext;
const transferContext = {} as TransferContext;

export const receiver = [
  // Wired as the machine wires them: compiles.
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      assign: { actions: { type: 'keepId', params: ({ event }) => ({ id: event.detail.peer }) } },
      'rtc.description': { actions: { type: 'sendSignal', params: ({ event }) => event } },
      'rtc.candidate': { actions: { type: 'sendSignal', params: ({ event }) => event } },
      'rtc.open': { actions: { type: 'keepTransport', params: ({ event }) => ({ transport: event.transport }) } },
      'download.progress': {
        actions: { type: 'recordProgress', params: ({ event }) => ({ received: event.received }) },
      },
      'download.failed': { actions: { type: 'recordDownloadFailure', params: ({ event }) => event } },
      'signalling.closed': { actions: { type: 'recordSignallingError', params: ({ event }) => event } },
      error: { actions: { type: 'recordSignallingError', params: ({ event }) => event } },
    },
  }),
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      // @ts-expect-error sendSignal sends a description or a candidate on, and `rtc.open` carries neither
      'rtc.open': { actions: { type: 'sendSignal', params: ({ event }) => event } },
    },
  }),
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      // @ts-expect-error keepTransport reads `transport`, and an `rtc.closed` has none
      'rtc.closed': { actions: { type: 'keepTransport', params: ({ event }) => ({ transport: event.transport }) } },
    },
  }),
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      // @ts-expect-error recordDownloadFailure reads the reason of a failed download, and `download.done` has none
      'download.done': { actions: { type: 'recordDownloadFailure', params: ({ event }) => event } },
    },
  }),
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      // @ts-expect-error recordSignallingError needs a closed or failed connection, and `cancel` is neither
      cancel: { actions: { type: 'recordSignallingError', params: ({ event }) => event } },
    },
  }),
  filedropReceiverSetup.createMachine({
    context: receiverContext,
    on: {
      // @ts-expect-error an action that reads its event cannot be wired by name alone: its params are required
      'download.progress': { actions: 'recordProgress' },
    },
  }),
];

export const transfer = [
  // Wired as the machine wires them: compiles.
  filedropSenderTransferSetup.createMachine({
    context: transferContext,
    on: {
      'rtc.description': { guard: { type: 'isAnswer', params: ({ event }) => event } },
      'rtc.open': { actions: { type: 'keepTransport', params: ({ event }) => ({ transport: event.transport }) } },
      'upload.failed': {
        guard: { type: 'isChannelGone', params: ({ event }) => event },
        actions: { type: 'recordUploadFailure', params: ({ event }) => event },
      },
    },
  }),
  filedropSenderTransferSetup.createMachine({
    context: transferContext,
    on: {
      // @ts-expect-error isAnswer reads a description, and a candidate has none
      'rtc.candidate': { guard: { type: 'isAnswer', params: ({ event }) => event } },
    },
  }),
  filedropSenderTransferSetup.createMachine({
    context: transferContext,
    on: {
      // @ts-expect-error recordUploadFailure reads the reason of a failed upload, and `upload.done` has none
      'upload.done': { actions: { type: 'recordUploadFailure', params: ({ event }) => event } },
    },
  }),
];

export const sender = [
  // Wired as the machine wires them: compiles.
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      request: [
        { guard: { type: 'isRunning', params: ({ event }) => event.detail } },
        { actions: { type: 'startTransfer', params: ({ event }) => event.detail } },
      ],
      offer: { actions: { type: 'forward', params: ({ event }) => event } },
      'rtc.open': { actions: { type: 'forward', params: ({ event }) => event } },
      'transfer.signal': { actions: { type: 'relaySignal', params: ({ event }) => event } },
      'transfer.rtc': { actions: { type: 'relayRtc', params: ({ event }) => event } },
      'transfer.progress': { actions: { type: 'announceProgress', params: ({ event }) => event } },
      'xstate.error.actor.*': {
        guard: { type: 'isChildCrash', params: ({ event }) => event },
        actions: { type: 'handleCrash', params: ({ event }) => event },
      },
    },
  }),
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      // @ts-expect-error forward hands a receiver's message or its rtc news to a transfer, and `request` starts one
      request: { actions: { type: 'forward', params: ({ event }) => event } },
    },
  }),
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      // @ts-expect-error relayRtc reads `command`, and a `transfer.signal` carries a message instead
      'transfer.signal': { actions: { type: 'relayRtc', params: ({ event }) => event } },
    },
  }),
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      // @ts-expect-error announceProgress reads `received` and `total`, and a `transfer.retrying` has an attempt
      'transfer.retrying': { actions: { type: 'announceProgress', params: ({ event }) => event } },
    },
  }),
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      // @ts-expect-error startTransfer reads the receiver's peer id, and `cancel` may have none
      cancel: { actions: { type: 'startTransfer', params: ({ event }) => event } },
    },
  }),
  filedropSenderSetup.createMachine({
    context: senderContext,
    on: {
      // @ts-expect-error endTransfer reads the output of a done transfer, and a crash has an error instead
      'xstate.error.actor.*': {
        actions: { type: 'endTransfer', params: ({ event }: { event: ErrorActorEvent }) => event },
      },
    },
  }),
];
