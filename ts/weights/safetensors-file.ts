// Reads a safetensors file's tensors in TypeScript, for loading with renamed keys (the plain case loads natively).
import fs from 'node:fs/promises'
import { CheckpointError } from '../errors.ts'
import type { TorchDType } from '../pickle/torch-pickle.ts'
import type { TorchTensor } from './torch-checkpoint.ts'

const DTYPES: Record<string, TorchDType> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
}

interface Entry {
  dtype: string
  shape: number[]
  data_offsets: [number, number]
}

/** Every tensor of a safetensors file, in header order; nothing in the file is executed. */
export async function readSafetensors(file: string): Promise<TorchTensor[]> {
  const bytes = await fs.readFile(file)
  const corrupt = (why: string) => new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${file}: ${why}`)
  if (bytes.length < 8) throw corrupt('too short for a safetensors header')
  const headerLength = Number(bytes.readBigUInt64LE(0))
  if (8 + headerLength > bytes.length) throw corrupt(`its header says ${headerLength} bytes, the file has ${bytes.length - 8}`)
  let header: Record<string, Entry | Record<string, string>>
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as typeof header
  } catch (err) {
    throw corrupt(`its header is not JSON (${(err as Error).message})`)
  }
  const base = 8 + headerLength
  const out: TorchTensor[] = []
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const {
      dtype,
      shape,
      data_offsets: [start, end],
    } = entry as Entry
    const mapped = DTYPES[dtype]
    if (!mapped) throw corrupt(`tensor ${name} has unsupported dtype ${dtype}`)
    if (base + end > bytes.length || start > end) throw corrupt(`tensor ${name} lies outside the file`)
    out.push({ name, dtype: mapped, shape, data: new Uint8Array(bytes.subarray(base + start, base + end)) })
  }
  return out
}
