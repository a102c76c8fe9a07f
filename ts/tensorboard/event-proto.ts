// TensorBoard's Event and Summary messages, encoded with protobufjs from a schema kept in this module.
import protobuf from 'protobufjs'

/**
 * The part of TensorFlow's `tensorflow/core/util/event.proto` and `tensorflow/core/framework/summary.proto`
 * (mirrored in TensorBoard as `tensorboard/compat/proto/`) that ConvKit writes: same package, message names,
 * field numbers and types, so the bytes are what `tf.summary` writes. Fields left out (graph_def, session_log,
 * histograms, audio, tensors, metadata) are simply never set.
 *
 * The schema is text in a module rather than a `.proto` file beside it: `npm run package` ships only what tsc
 * emits, so a separate file would have to be copied and found from `lib/esm` and `lib/cjs` alike.
 */
export const EVENT_PROTO = `
syntax = "proto3";
package tensorboard;

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    // "brain.Event:2" in the first record of every file.
    string file_version = 3;
    Summary summary = 5;
  }
}

message Summary {
  message Image {
    int32 height = 1;
    int32 width = 2;
    // 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA.
    int32 colorspace = 3;
    // PNG, JPEG or GIF bytes.
    bytes encoded_image_string = 4;
  }
  message Value {
    string tag = 1;
    oneof value {
      float simple_value = 2;
      Image image = 4;
    }
  }
  repeated Value value = 1;
}
`

/** The file version TensorBoard expects in the first event of a file. */
export const FILE_VERSION = 'brain.Event:2'

export interface SummaryImage {
  height: number
  width: number
  /** 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA. */
  colorspace: number
  encoded_image_string: Uint8Array
}

/** One tagged value: a scalar or an image. */
export type SummaryValue = { tag: string; simple_value: number } | { tag: string; image: SummaryImage }

/** An Event as plain data; field names as in the .proto (`keepCase`). */
export interface TfEvent {
  /** Seconds since the Unix epoch. */
  wall_time: number
  step?: number
  file_version?: string
  summary?: { value: SummaryValue[] }
}

let eventType: protobuf.Type | undefined

function lookupEvent(): protobuf.Type {
  eventType ??= protobuf.parse(EVENT_PROTO, { keepCase: true }).root.lookupType('tensorboard.Event')
  return eventType
}

/** The serialized Event. A value present in `event` is written even when it is proto3's default (a 0 scalar). */
export function encodeEvent(event: TfEvent): Uint8Array {
  const type = lookupEvent()
  return type.encode(type.fromObject(event)).finish()
}

/** The Event back as plain data (bytes as Uint8Array, int64 as number, unset plain fields as their proto3 defaults); for tests and tools. */
export function decodeEvent(bytes: Uint8Array): TfEvent {
  const type = lookupEvent()
  return type.toObject(type.decode(bytes), { longs: Number, defaults: true }) as TfEvent
}
