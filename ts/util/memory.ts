// Memory handed back between phases. ConvKit's caching CPU allocator keeps freed blocks for the next tensor of the
// same size: within a phase (training steps, evaluation batches) every step asks for the same sizes again, which is why
// it pays. Across phases the sizes differ (training crops at batch 32 against evaluation views at batch 83, fp32
// against bf16 in the precision probe), so what one phase left cached would sit beside what the next one allocates.
import { native } from '../binding.ts'

/** Frees the allocator's cached blocks (tensors in use keep theirs); returns the bytes handed back. */
export function releaseCachedBlocks(): number {
  return native.trimCpuCache()
}
