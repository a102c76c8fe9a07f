// C API for host-to-GPU copies that do not wait for the GPU, for src/transfer.rs.
//
// Why: a plain copy from pageable host memory to a CUDA device synchronizes the stream first, so every training
// step that sends its batch indices or augmentation draws would wait for the previous step's kernels to finish,
// and the host could never queue one step while the GPU runs the other. Through pinned memory (libtorch's caching
// host allocator, which keeps the block until the copy has run) the copy is queued like a kernel.
//
// Conventions as in fused_optimizer.h (errors from ck_c10d_free_error; tensors are at::Tensor*).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Queues a copy of the host tensor `t` to cuda:`device_index`; *out receives the new at::Tensor* (the caller owns
// it). The host tensor may be released or changed at once.
char* ck_host_to_cuda_async(void* t, int device_index, void** out);

#ifdef __cplusplus
}
#endif
