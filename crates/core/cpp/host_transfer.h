// C API for copies between host and GPU that do not make the host wait for the GPU, for src/transfer.rs.
//
// Why: a plain copy from pageable host memory to a CUDA device synchronizes the stream first, so every training
// step that sends its batch indices or augmentation draws would wait for the previous step's kernels to finish,
// and the host could never queue one step while the GPU runs the other. Through pinned memory (libtorch's caching
// host allocator, which keeps the block until the copy has run) the copy is queued like a kernel. The other way, a
// plain copy to the host waits for everything queued on the stream, including a step queued after the one whose
// report is wanted; a copy queued right after the step, with an event behind it, can be waited for alone.
//
// Conventions as in fused_optimizer.h (errors from ck_c10d_free_error; tensors are at::Tensor*).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Queues a copy of the host tensor `t` to cuda:`device_index`; *out receives the new at::Tensor* (the caller owns
// it). The host tensor may be released or changed at once.
char* ck_host_to_cuda_async(void* t, int device_index, void** out);

typedef struct ck_host_copy ck_host_copy;

// Queues a copy of `t` into pinned host memory on its device's current stream, with an event recorded after it
// (a host tensor is taken as it is); *out receives the handle, for exactly one of the two calls below.
char* ck_to_host_start(void* t, ck_host_copy** out);
// Waits for that copy alone and releases the handle; *out receives the host tensor (a new at::Tensor*).
char* ck_to_host_finish(ck_host_copy* copy, void** out);
// Releases a handle whose copy is no longer wanted.
void ck_to_host_abandon(ck_host_copy* copy);

#ifdef __cplusplus
}
#endif
