// ONNX files read back with ONNX's own schema through protobufjs: a second implementation, independent of the prost
// types that wrote them.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

const ModelProto = new protobuf.Root()
  .loadSync(path.join(repo, 'crates', 'core', 'proto', 'onnx.proto'), { keepCase: true })
  .lookupType('onnx.ModelProto')

export interface OnnxFile {
  opset_import: { domain?: string; version: number }[]
  metadata_props: { key: string; value: string }[]
  graph: { input: OnnxValue[]; output: OnnxValue[]; node: { op_type: string }[] }
}
export interface OnnxValue {
  name: string
  type: { tensor_type: { elem_type: number; shape: { dim: { dim_value?: number; dim_param?: string }[] } } }
}

export function readOnnx(file: string): OnnxFile {
  return ModelProto.toObject(ModelProto.decode(fs.readFileSync(file)), { longs: Number }) as OnnxFile
}

/** An ONNX file's `metadata_props` as a record. */
export function metadataOf(file: string): Record<string, string> {
  return Object.fromEntries(readOnnx(file).metadata_props.map((p) => [p.key, p.value]))
}
