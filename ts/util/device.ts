// Device names users pass, and what the runtime reports about them.
import { callSync, native } from '../binding.ts'

/** `'auto'` picks CUDA when it is available, else the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

export interface RuntimeInfo {
  torchVersion: string
  cudaAvailable: boolean
  cudaDeviceCount: number
  /** Where `libtorch_cuda.so` was loaded from, when it was. */
  cudaLoadedFrom?: string
  /** Why CUDA is not in use, when it is not. */
  cudaLoadError?: string
  /** libtorch's intra-op threads. */
  threads: number
}

/** What libtorch this process runs on, and whether CUDA is usable. */
export function runtimeInfo(): RuntimeInfo {
  return callSync('reading the runtime', () => native.runtimeInfo())
}

/** Seeds libtorch's generators, so weights and dropout repeat from run to run. */
export function setSeed(seed: number): void {
  callSync('seeding', () => native.setSeed(seed))
}
