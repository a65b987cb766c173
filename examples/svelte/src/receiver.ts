import { fromRtc, fromTransport } from 'signalbox';
import { clientCodec, filedropReceiver } from 'signalbox/filedrop';
import { webSocketTransport } from 'signalbox/websocket';

/** A filedrop receiver wired to the server this page came from, and to the browser's WebRTC. */
export const receiverLogic = filedropReceiver.provide({
  actors: {
    signalling: fromTransport(() => webSocketTransport(`ws://${location.host}/filedrop`), clientCodec()),
    rtc: fromRtc({ RTCPeerConnection, trickle: true }),
  },
});
