/**
 * filedrop (`signalbox/filedrop`): one file from a sender to receivers that
 * type its code, over WebRTC, with a signalling server in between. The
 * server session, the sender (and its per-receiver transfer), the receiver,
 * as XState machines; the codecs; the server factory; file sources and sinks
 * that need no file system. Browser-safe.
 *
 * @packageDocumentation
 */
export {
  filedropSender,
  filedropSenderTransfer,
  fileInfoOf,
  type SenderInput,
  type SenderContext,
  type SenderCommand,
  type SenderEvent,
  type SenderEmitted,
  type TransferInput,
  type TransferContext,
  type TransferEvent,
  type TransferOutput,
  type TransferReport,
  type TransferTiming,
} from './sender.machine.js';
export {
  filedropReceiver,
  type ReceiverInput,
  type ReceiverContext,
  type ReceiverCommand,
  type ReceiverEvent,
  type ReceiverEmitted,
} from './receiver.machine.js';
export {
  filedropSession,
  planRelay,
  type FileDropSessionActor,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionServices,
  type Transmission,
} from './server.machine.js';
export { createFileDropServer, type FileDropServer, type FileDropServerOptions } from './server.js';
export { clientCodec, serverCodec, MAX_DATA_DEPTH, type FileDropCodecOptions, type InvalidPeer } from './codec.js';
export {
  readDescription,
  readCandidate,
  readResponse,
  readProgress,
  readDone,
  readOffset,
  isFault,
  type Fault,
  type Reading,
  type ResponseReading,
  type ProgressReading,
} from './wire.js';
export { serverSocketIoEvents, clientSocketIoEvents } from './socket-io.js';
export { memoryRegistry, type PeerRegistry } from './registry.js';
export { FileDropError, transferFailures, type TransferFailure } from './errors.js';
export {
  memorySource,
  memorySink,
  blobSource,
  sha256Hex,
  sha256Stream,
  sha256OfSource,
  safeFileName,
  isResumable,
  type FileSource,
  type FileSink,
  type ResumableSink,
  type MemorySinkInit,
  type SinkOpener,
  type MemorySink,
  type MemorySourceInit,
  type BlobLike,
} from '../transfer/files.js';
export { CHUNK_SIZE, CHUNK_HEADER, encodeChunk, decodeChunk } from '../transfer/chunks.js';
export {
  upload,
  download,
  openSink,
  resumeOffset,
  isResumeOffset,
  DEFAULT_WINDOW,
  type UploadInput,
  type UploadEvent,
  type UploadCommand,
  type DownloadInput,
  type DownloadEvent,
  type DownloadCommand,
  type OpenSinkInput,
  type ResumeOffsetInput,
  type FileTransferFailure,
} from '../transfer/transfer.js';
export {
  PEER_ID_ALPHABET,
  PEER_ID_LENGTH,
  isPeerId,
  generatePeerId,
  normalizeCode,
  clientMessageTypes,
  serverOnlyTypes,
  direction,
  type FileInfo,
  type AnnouncedFile,
  type DoneData,
  type Refusal,
  type ResponseData,
  type SessionDescription,
  type OfferData,
  type Progress,
  type ServerErrorCode,
  type ClientMessage,
  type ServerMessage,
  type RelayedMessage,
  type ClientMessageType,
  type ServerMessageType,
  type MessageOf,
} from './protocol.js';
