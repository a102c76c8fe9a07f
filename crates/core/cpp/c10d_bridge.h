// C API over PyTorch's own c10d (TCPStore, PrefixStore, ProcessGroupGloo), for the Rust wrapper in
// src/distributed/. No collective algorithm lives here: every byte moves through libtorch's code.
//
// Conventions
// - Every fallible function returns NULL on success, or a malloc'ed, NUL-terminated error message that the
//   caller releases with ck_c10d_free_error(). No C++ exception ever leaves these functions.
// - Tensors are `void*` pointing at an `at::Tensor` (tch's C_tensor*, i.e. `tch::Tensor::as_mut_ptr()`).
//   Collectives work in place on the tensor's storage, which must be dense and contiguous (CPU for Gloo).
// - wait_ms <= 0 waits without an extra bound: the process group's own timeout still applies inside it.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ck_c10d_store ck_c10d_store;
typedef struct ck_c10d_pg ck_c10d_pg;
typedef struct ck_c10d_work ck_c10d_work;

void ck_c10d_free_error(char* err);

// The rendezvous, as torchrun's env:// makes it: rank 0 hosts a TCPStore on host:port (multi-tenant) and waits
// for world_size ranks; the others connect, retrying until timeout_ms. Wrapped like init_process_group does
// (PrefixStore "default_pg"). Returns once every rank has arrived (each sets a key and waits for all of them,
// bounded by timeout_ms), so ranks that start far apart meet here rather than inside Gloo's shorter timeout.
char* ck_c10d_rendezvous(const char* host, int port, int rank, int world_size, int64_t timeout_ms,
                         ck_c10d_store** out);
void ck_c10d_store_destroy(ck_c10d_store* store);

// A Gloo process group over `store`, keyed like torch's default group (PrefixStore "0/" then "cpu/").
// `timeout_ms` bounds every collective's sends and receives and the connection set-up: it is what turns a hung
// peer into an error. Devices follow torch's defaults (GLOO_SOCKET_IFNAME, else this host's name, else
// loopback) unless `hostname` is non-NULL, in which case Gloo binds to that address.
char* ck_c10d_pg_gloo_create(ck_c10d_store* store, int rank, int world_size, int64_t timeout_ms,
                             const char* hostname, ck_c10d_pg** out);
// Joins the group's worker threads.
void ck_c10d_pg_destroy(ck_c10d_pg* pg);

// Starts an in-place SUM all-reduce of one tensor; *out is the pending work (release it with
// ck_c10d_work_destroy after waiting).
char* ck_c10d_allreduce_sum_start(ck_c10d_pg* pg, void* tensor, ck_c10d_work** out);
// Waits for a work to finish; its error (a peer's connection closing, a timeout) comes back as the message.
char* ck_c10d_work_wait(ck_c10d_work* work, int64_t wait_ms);
void ck_c10d_work_destroy(ck_c10d_work* work);

// In-place broadcast of one tensor from `root`.
char* ck_c10d_broadcast(ck_c10d_pg* pg, void* tensor, int root, int64_t wait_ms);
char* ck_c10d_barrier(ck_c10d_pg* pg, int64_t wait_ms);

// Training-mode batch norm of `input` [N, C, ...] with the statistics of every rank's batch together
// (torch.nn.SyncBatchNorm): one all-reduce now, one in its backward pass (cpp/sync_batch_norm.cpp). `weight` and
// `bias` may be NULL (no affine parameters); the running statistics are updated in place with `momentum`.
// *out receives a new at::Tensor* (tch takes ownership) on autograd's graph. Every rank must call it, for the
// same layers in the same order, and run the backward pass of the result.
char* ck_c10d_sync_batch_norm(ck_c10d_pg* pg, void* input, void* weight, void* bias, void* running_mean,
                              void* running_var, double momentum, double eps, void** out);

#ifdef CK_C10D_NCCL
// A NCCL process group on cuda:`device_index` over `store` (PrefixStore "0/" then "cuda/"), for CUDA tensors.
// Compiled only where the CUDA and NCCL headers are (scripts/gpu-check.sh --prepare), never in the CPU build.
char* ck_c10d_pg_nccl_create(ck_c10d_store* store, int rank, int world_size, int64_t timeout_ms, int device_index,
                             ck_c10d_pg** out);
#endif

#ifdef __cplusplus
}
#endif
