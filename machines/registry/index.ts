/**
 * registry (`signalbox/registry`): peers register the files they hold with a
 * server, see each other's lists change, and fetch files straight from each
 * other over WebRTC data channels (signalled through the server), verified
 * by size and SHA-256. The server session, the client and its per-file
 * jobs as XState machines; the codecs; the server factory; the friendly
 * client; file providers that need no file system. Browser-safe.
 *
 * @packageDocumentation
 */
export {
  registryClient,
  SIGNALLING_HINT,
  RTC_HINT,
  type RegistryClientInput,
  type RegistryClientContext,
  type RegistryClientCommand,
  type RegistryClientEvent,
  type RegistryClientEmitted,
  type ClientSignallingCommand,
  type Job,
} from './client.machine.js';
export { createRegistryClient, type RegistryClient, type RegistryClientOptions, type FetchResult } from './client.js';
export {
  registryFetch,
  type FetchInput,
  type FetchContext,
  type FetchEvent,
  type FetchOutput,
  type FetchReport,
  type JobCommand,
  type JobTiming,
} from './fetch.machine.js';
export {
  registryServe,
  type ServeInput,
  type ServeContext,
  type ServeEvent,
  type ServeOutput,
} from './serve.machine.js';
export {
  registrySession,
  planRelay,
  type RegistrySessionActor,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionServices,
} from './server.machine.js';
export { createRegistryServer, type RegistryServer, type RegistryServerOptions } from './server.js';
export {
  clientCodec,
  serverCodec,
  channelCodec,
  checkFileList,
  checkOutgoingList,
  fileListSchema,
  RegistryDecodeError,
  type ListLimits,
  type RegistryCodecOptions,
} from './codec.js';
export { memoryFileRegistry, type FileRegistry } from './registry.js';
export { RegistryError, registryFailures, type RegistryFailure } from './errors.js';
export { blobProvider, memoryProvider, type FileProvider } from './files.js';
export {
  firstFrame,
  openSource,
  openSink,
  keeper,
  listFiles,
  type FirstFrameEvent,
  type KeepEvent,
  type OpenSourceInput,
  type ListFilesInput,
} from './transfer.js';
export {
  MAX_PATH_LENGTH,
  checkPath,
  isConnectionId,
  clientMessageTypes,
  serverOnlyTypes,
  relayTypes,
  type FileEntry,
  type Side,
  type Refusal,
  type ServerErrorCode,
  type ClientMessage,
  type ServerMessage,
  type RelayMessage,
  type ChannelMessage,
  type ClientMessageType,
  type ServerMessageType,
  type RelayMessageType,
  type MessageOf,
} from './protocol.js';
