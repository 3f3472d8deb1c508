import {createRequire} from 'node:module'

// Compressed frames are made by zstd compiled to WebAssembly (@bokuweb/zstd-wasm, pinned), not by the `zstd` CLI
// or a native addon: the same package version gives the same bytes on every machine and CPU (WebAssembly integer
// code is deterministic), needs no compiler to install, and a frame cut at a fixed size fits its buffer-only API.
// Already-compressed blobs, the bulk of a bundle, never reach it (raw frames, frame.ts). Measured figures and the
// alternatives: docs/bundle-format.md, "Format 2".

export const WASM_PACKAGE = '@bokuweb/zstd-wasm'
export const WASM_PACKAGE_VERSION = '0.0.27'

interface ZstdWasm {
  init(): Promise<void>
  compress(buf: Uint8Array, level?: number): Uint8Array
  decompress(buf: Uint8Array, opts?: {defaultHeapSize?: number}): Uint8Array
}

let loaded: Promise<ZstdWasm> | undefined

/** Loads and instantiates the module once per process. */
export function loadZstdWasm(): Promise<ZstdWasm> {
  loaded ??= (async () => {
    // The package's "node" export is CommonJS whose init() reads the .wasm beside it.
    const mod = createRequire(import.meta.url)(WASM_PACKAGE) as ZstdWasm
    await mod.init()
    return mod
  })()
  return loaded
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * One complete zstd frame of `data` at `level` (ZSTD_compress: Frame_Content_Size recorded, no checksum).
 * The module must have been loaded with loadZstdWasm().
 */
export function compressFrame(zstd: ZstdWasm, data: Uint8Array, level: number): Buffer {
  return asBuffer(zstd.compress(data, level))
}

/**
 * The content of one zstd frame whose header records `expectedSize` (the caller has checked that, so a forged
 * size cannot make the decoder allocate more than the caller allowed). Throws a plain Error on corrupt input.
 */
export function decompressFrame(zstd: ZstdWasm, frame: Uint8Array, expectedSize: number): Buffer {
  let out: Uint8Array
  try {
    out = zstd.decompress(frame, {defaultHeapSize: expectedSize})
  } catch (error) {
    throw new Error(`zstd could not decode it (${(error as Error).message.replace('compress', 'decompress')})`, {
      cause: error,
    })
  }
  if (out.byteLength !== expectedSize)
    throw new Error(`it decodes to ${out.byteLength} bytes, not the ${expectedSize} its header records`)
  return asBuffer(out)
}

export type {ZstdWasm}
