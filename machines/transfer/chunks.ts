/**
 * The data channel carries the file as binary frames: a 4-byte big-endian
 * sequence number (0, 1, 2, …) followed by at most {@link CHUNK_SIZE} bytes.
 * Nothing else travels on it.
 */

/** Most bytes of file data in one frame: 16 KiB, the size every WebRTC stack delivers whole. */
export const CHUNK_SIZE = 16 * 1024;

/** Bytes before the data: the sequence number. */
export const CHUNK_HEADER = 4;

/**
 * One frame: `seq` as 4 bytes big-endian, then `data` (copied).
 *
 * @example
 * ```ts
 * encodeChunk(1, new Uint8Array([0xaa])); // Uint8Array [0, 0, 0, 1, 0xaa]
 * ```
 */
export function encodeChunk(seq: number, data: Uint8Array): Uint8Array {
  if (data.byteLength > CHUNK_SIZE) {
    throw new RangeError(`a chunk carries at most ${CHUNK_SIZE} bytes, got ${data.byteLength}: split it`);
  }
  const frame = new Uint8Array(CHUNK_HEADER + data.byteLength);
  new DataView(frame.buffer).setUint32(0, seq >>> 0, false);
  frame.set(data, CHUNK_HEADER);
  return frame;
}

/** A frame split into its sequence number and a view of its data, or a reason it is not a chunk. */
export function decodeChunk(frame: Uint8Array): { seq: number; data: Uint8Array } | { invalid: string } {
  if (frame.byteLength < CHUNK_HEADER) return { invalid: `a ${frame.byteLength}-byte frame has no sequence number` };
  if (frame.byteLength > CHUNK_HEADER + CHUNK_SIZE) {
    return { invalid: `a frame of ${frame.byteLength} bytes is over ${CHUNK_SIZE} bytes of data` };
  }
  const seq = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0, false);
  return { seq, data: frame.subarray(CHUNK_HEADER) };
}
