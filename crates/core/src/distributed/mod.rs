//! Data-parallel training on PyTorch's own distributed engine: the rendezvous (`TCPStore`), a process group
//! (`ProcessGroupGloo`) and its collectives, all from libtorch through the C++ bridge in `cpp/`. Nothing here
//! moves bytes itself; [`GradSync`] only decides which gradients go into which bucket.
//!
//! The conventions are torchrun's: rank 0 hosts the store at `MASTER_ADDR:MASTER_PORT`, every rank knows its
//! `RANK` and the `WORLD_SIZE`. A collective whose peer died fails within a fraction of a second (its socket
//! closes); one whose peer hangs fails after [`DistConfig::timeout`]. Either way the error names this rank and,
//! in a group of two, the other; a failed group is not reused.

pub(crate) mod ffi;
mod grads;

use std::ffi::{c_int, c_void, CString};
use std::sync::Mutex;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::weights::NetworkTensors;

pub use grads::{GradSync, SyncOutcome};

/// Which c10d backend carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo, over TCP, on CPU tensors (CUDA tensors are staged through the host).
    Gloo,
    /// NCCL on CUDA tensors. Not in this build: see the README's "More than one device".
    Nccl,
}

impl Backend {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => Err(Error::option(
                "distributed.backend",
                "'gloo' or 'nccl'",
                format!("{other:?}"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }
}

/// Where and how a rank joins its group.
#[derive(Debug, Clone)]
pub struct DistConfig {
    /// The address of rank 0, which hosts the rendezvous store (`MASTER_ADDR`).
    pub master_addr: String,
    /// `MASTER_PORT`.
    pub master_port: u16,
    /// This process's rank, `0..world_size` (`RANK`).
    pub rank: i32,
    /// `WORLD_SIZE`.
    pub world_size: i32,
    pub backend: Backend,
    /// Bounds each collective: a peer that stops answering becomes an error after this long.
    pub timeout: Duration,
    /// Bounds the rendezvous: how long ranks wait for each other to start.
    pub store_timeout: Duration,
    /// The address Gloo binds to; torch's default (`GLOO_SOCKET_IFNAME`, else the host's name) when `None`.
    pub gloo_hostname: Option<String>,
}

struct Handles {
    pg: *mut ffi::RawPg,
    store: *mut ffi::RawStore,
}

/// One rank's membership of a process group. Every method is a collective: all ranks call it, in the same
/// order. Dropping it (or [`ProcessGroup::destroy`]) leaves the group.
pub struct ProcessGroup {
    handles: Mutex<Option<Handles>>,
    rank: i32,
    world_size: i32,
    backend: Backend,
}

// SAFETY: the handles are c10d objects built for use from any thread; the mutex serializes our calls into them.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("backend", &self.backend)
            .finish()
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128) as i64
}

impl ProcessGroup {
    /// Meets the other ranks at the store (waiting up to `store_timeout` for them) and starts the group.
    pub fn init(config: &DistConfig) -> Result<ProcessGroup> {
        let (rank, world_size) = (config.rank, config.world_size);
        if world_size < 1 || rank < 0 || rank >= world_size {
            return Err(Error::option(
                "distributed.rank",
                format!("an integer in 0..{world_size} (the world size)"),
                rank,
            ));
        }
        if config.backend == Backend::Nccl {
            return Err(Error::DeviceUnavailable {
                requested: "nccl".into(),
                reason: "this build of ConvKit has no NCCL process group (it is compiled without CUDA headers); \
                         use backend 'gloo'"
                    .into(),
            });
        }
        let fail = |op: String, reason: String| Error::Distributed {
            rank,
            world_size,
            op,
            peer: None,
            reason,
        };
        let host = CString::new(config.master_addr.as_str()).map_err(|_| {
            Error::option(
                "distributed.masterAddr",
                "an address without NUL bytes",
                &config.master_addr,
            )
        })?;
        let gloo_host = config
            .gloo_hostname
            .as_deref()
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::option("distributed.glooHostname", "an address without NUL bytes", "?"))?;
        let mut store = std::ptr::null_mut();
        // SAFETY: valid C strings and an out pointer; the bridge catches every C++ exception.
        ffi::check(unsafe {
            ffi::ck_c10d_rendezvous(
                host.as_ptr(),
                config.master_port as c_int,
                rank,
                world_size,
                millis(config.store_timeout),
                &mut store,
            )
        })
        .map_err(|e| {
            fail(
                format!(
                    "rendezvous of {world_size} ranks at {}:{} (rank 0 hosts it; waited up to {} s)",
                    config.master_addr,
                    config.master_port,
                    config.store_timeout.as_secs()
                ),
                e,
            )
        })?;
        let mut pg = std::ptr::null_mut();
        // SAFETY: `store` is live; the hostname pointer outlives the call.
        let made = ffi::check(unsafe {
            ffi::ck_c10d_pg_gloo_create(
                store,
                rank,
                world_size,
                millis(config.timeout),
                gloo_host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
                &mut pg,
            )
        });
        if let Err(e) = made {
            // SAFETY: the store was made above and nothing else holds it.
            unsafe { ffi::ck_c10d_store_destroy(store) };
            return Err(fail("Gloo process group set-up".into(), e));
        }
        Ok(ProcessGroup {
            handles: Mutex::new(Some(Handles { pg, store })),
            rank,
            world_size,
            backend: config.backend,
        })
    }

    pub fn rank(&self) -> i32 {
        self.rank
    }

    pub fn world_size(&self) -> i32 {
        self.world_size
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The device collectives read and write: the host, for Gloo.
    pub fn comm_device(&self) -> Device {
        Device::Cpu
    }

    /// Leaves the group (joining its threads); later collectives fail. Idempotent.
    pub fn destroy(&self) {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handles {
            // SAFETY: both were made by init and are released once, the group before the store it uses.
            unsafe {
                ffi::ck_c10d_pg_destroy(h.pg);
                ffi::ck_c10d_store_destroy(h.store);
            }
        }
    }

    /// Who this rank depends on, for error messages: the other rank in a pair, else "another rank".
    fn peers(&self) -> Option<String> {
        match self.world_size {
            1 => None,
            2 => Some(format!("rank {}", 1 - self.rank)),
            n => Some(format!("one of the other {} ranks", n - 1)),
        }
    }

    fn error(&self, op: &str, reason: String) -> Error {
        Error::Distributed {
            rank: self.rank,
            world_size: self.world_size,
            op: op.to_owned(),
            peer: self.peers(),
            reason,
        }
    }

    /// Runs `f` on the live group, or fails naming `op` once the group is gone.
    fn with_pg<T>(&self, op: &str, f: impl FnOnce(*mut ffi::RawPg) -> Result<T, String>) -> Result<T> {
        let guard = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let h = guard.as_ref().ok_or_else(|| Error::Distributed {
            rank: self.rank,
            world_size: self.world_size,
            op: op.to_owned(),
            peer: None,
            reason: "the process group was destroyed".into(),
        })?;
        f(h.pg).map_err(|e| self.error(op, e))
    }

    /// Sums each tensor over all ranks, in place. The tensors must be dense, contiguous and on
    /// [`ProcessGroup::comm_device`]; all of them are in flight at once (Gloo works on several concurrently).
    pub fn allreduce_sum(&self, tensors: &mut [Tensor], op: &str) -> Result<()> {
        self.with_pg(op, |pg| {
            let mut works = Vec::with_capacity(tensors.len());
            let mut first_err = None;
            for t in tensors.iter_mut() {
                let mut work = std::ptr::null_mut();
                // SAFETY: `pg` is live under the lock; the bridge keeps its own reference to the tensor.
                match ffi::check(unsafe {
                    ffi::ck_c10d_allreduce_sum_start(pg, t.as_mut_ptr() as *mut c_void, &mut work)
                }) {
                    Ok(()) => works.push(work),
                    Err(e) => {
                        first_err = Some(e);
                        break;
                    }
                }
            }
            for work in works {
                // SAFETY: each work was made above and is released once, after waiting for it.
                let waited = ffi::check(unsafe { ffi::ck_c10d_work_wait(work, 0) });
                unsafe { ffi::ck_c10d_work_destroy(work) };
                if let Err(e) = waited {
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }

    /// Sums small values (counts, loss sums) over all ranks, in float64.
    pub fn allreduce_sum_f64(&self, values: &[f64], op: &str) -> Result<Vec<f64>> {
        let mut t = Tensor::f_from_slice(values)?.f_to_device(self.comm_device())?;
        self.allreduce_sum(std::slice::from_mut(&mut t), op)?;
        Ok(Vec::<f64>::try_from(&t)?)
    }

    /// Copies `root`'s tensor into every rank's, in place (dense, contiguous, on the comm device).
    pub fn broadcast(&self, t: &mut Tensor, root: i32, op: &str) -> Result<()> {
        self.with_pg(op, |pg| {
            // SAFETY: `pg` is live under the lock; the tensor outlives the blocking call.
            ffi::check(unsafe { ffi::ck_c10d_broadcast(pg, t.as_mut_ptr() as *mut c_void, root as c_int, 0) })
        })
    }

    /// `root`'s values on every rank, in float64.
    pub fn broadcast_f64(&self, values: &[f64], root: i32, op: &str) -> Result<Vec<f64>> {
        let mut t = Tensor::f_from_slice(values)?.f_to_device(self.comm_device())?;
        self.broadcast(&mut t, root, op)?;
        Ok(Vec::<f64>::try_from(&t)?)
    }

    /// Gives every rank `root`'s parameters and buffers (batch norm statistics), as DDP does at its start.
    pub fn broadcast_network(&self, net: &mut impl NetworkTensors, root: i32) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let tensors: Vec<Tensor> = net
            .params()
            .iter()
            .map(|p| p.tensor.shallow_clone())
            .chain(net.buffers().iter().map(|b| b.tensor.shallow_clone()))
            .collect();
        // One flat buffer per element type: a handful of broadcasts instead of one per tensor.
        let mut kinds: Vec<Kind> = Vec::new();
        for t in &tensors {
            if !kinds.contains(&t.kind()) {
                kinds.push(t.kind());
            }
        }
        for kind in kinds {
            let members: Vec<&Tensor> = tensors.iter().filter(|t| t.kind() == kind).collect();
            let views = members
                .iter()
                .map(|t| t.f_reshape([-1]))
                .collect::<Result<Vec<_>, _>>()?;
            let mut flat = Tensor::f_cat(&views, 0)?
                .f_to_device(self.comm_device())?
                .f_contiguous()?;
            self.broadcast(
                &mut flat,
                root,
                &format!("broadcast of the weights and buffers from rank {root}"),
            )?;
            let mut offset = 0;
            for t in members {
                let n = t.numel() as i64;
                let mut dst = t.shallow_clone();
                dst.f_copy_(&flat.f_narrow(0, offset, n)?.f_view(t.size().as_slice())?)?;
                offset += n;
            }
        }
        Ok(())
    }

    /// Batch norm in training mode over every rank's batch together, as `torch.nn.SyncBatchNorm` normalizes: one
    /// all-reduce of the statistics now and one of the gradient in the backward pass of the result (which every
    /// rank must run, as it must call this for the same layers in the same order). Updates the running
    /// statistics in place. `x` is `[N, C, ...]`; `weight` and `bias` are both given or both absent.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_batch_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        let ptr = |t: &Tensor| t.as_ptr() as *mut c_void;
        let optional = |t: Option<&Tensor>| t.map_or(std::ptr::null_mut(), ptr);
        self.with_pg("all-reduce of the batch norm statistics", |pg| {
            let mut out: *mut c_void = std::ptr::null_mut();
            // SAFETY: `pg` is live under the lock and the tensors outlive the call; the bridge takes its own
            // references to what the backward pass needs (the group included).
            ffi::check(unsafe {
                ffi::ck_c10d_sync_batch_norm(
                    pg,
                    ptr(x),
                    optional(weight),
                    optional(bias),
                    ptr(running_mean),
                    ptr(running_var),
                    momentum,
                    eps,
                    &mut out,
                )
            })?;
            // SAFETY: on success `out` is a new at::Tensor* that nothing else owns.
            Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
        })
    }

    /// Names a failure of the backward pass through synchronized batch norm (its all-reduce runs inside it) as
    /// this group's error.
    pub fn backward_error(&self, reason: String) -> Error {
        self.error("all-reduce of the batch norm gradients (in the backward pass)", reason)
    }

    /// Waits until every rank has reached this call: up to `timeout` when given (a phase where ranks may drift
    /// far apart, such as loading data), else up to the group's own timeout.
    pub fn barrier(&self, timeout: Option<Duration>) -> Result<()> {
        let op = match timeout {
            Some(t) => format!("barrier (waited up to {} s)", t.as_secs()),
            None => "barrier".to_owned(),
        };
        self.with_pg(&op, |pg| {
            // SAFETY: `pg` is live under the lock.
            ffi::check(unsafe { ffi::ck_c10d_barrier(pg, timeout.map_or(0, millis)) })
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.destroy();
    }
}
