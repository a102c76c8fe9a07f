//! `NativeProcessGroup`: this process's place in a data-parallel group (PyTorch's c10d, through the core), with
//! the few collectives the training loop needs besides the gradient averaging inside each step; and
//! `NativeModel.attachProcessGroup`, which joins a model to one (declared here so that the model's module does not
//! depend on this one).

use std::sync::Arc;

use convkit_core::distributed::{DistConfig, ProcessGroup};
use convkit_core::options::DistributedOptions;
use napi::bindgen_prelude::{AsyncTask, Float64Array};
use napi_derive::napi;

use crate::dataset::lock;
use crate::model::NativeModel;
use crate::worker::{self, TorchTask};

/// One rank of a process group. Every method is a collective: all ranks call it, in the same order.
#[napi]
pub struct NativeProcessGroup {
    pub(crate) inner: Arc<ProcessGroup>,
}

#[napi]
impl NativeProcessGroup {
    /// Meets the other ranks at rank 0's store (`masterAddr:masterPort`) and starts a Gloo group; resolves once
    /// every rank has arrived.
    #[napi(ts_return_type = "Promise<NativeProcessGroup>")]
    pub fn init(options: DistributedOptions) -> napi::Result<AsyncTask<TorchTask<ProcessGroup, NativeProcessGroup>>> {
        let config = DistConfig::try_from(&options).map_err(crate::errors::to_napi)?;
        Ok(AsyncTask::new(TorchTask::new(
            move || ProcessGroup::init(&config),
            |_, group| Ok(NativeProcessGroup { inner: Arc::new(group) }),
        )))
    }

    #[napi(getter)]
    pub fn rank(&self) -> i32 {
        self.inner.rank()
    }

    #[napi(getter)]
    pub fn world_size(&self) -> i32 {
        self.inner.world_size()
    }

    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend().name().to_owned()
    }

    /// Sums small values (counts, loss sums, confusion matrices) over all ranks, in float64.
    #[napi(ts_return_type = "Promise<Float64Array>")]
    pub fn allreduce_sum(&self, values: Float64Array, what: String) -> AsyncTask<TorchTask<Vec<f64>, Float64Array>> {
        let group = Arc::clone(&self.inner);
        let values = values.to_vec();
        AsyncTask::new(TorchTask::new(
            move || group.allreduce_sum_f64(&values, &format!("all-reduce of {what}")),
            |_, v| Ok(Float64Array::new(v)),
        ))
    }

    /// `root`'s values on every rank (decisions such as stopping early, the learning rate).
    #[napi(ts_return_type = "Promise<Float64Array>")]
    pub fn broadcast_values(
        &self,
        values: Float64Array,
        root: i32,
        what: String,
    ) -> AsyncTask<TorchTask<Vec<f64>, Float64Array>> {
        let group = Arc::clone(&self.inner);
        let values = values.to_vec();
        AsyncTask::new(TorchTask::new(
            move || group.broadcast_f64(&values, root, &format!("broadcast of {what} from rank {root}")),
            |_, v| Ok(Float64Array::new(v)),
        ))
    }

    /// Copies `root`'s parameters and buffers (batch norm statistics) into `model` on every rank.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn broadcast_model(&self, model: &NativeModel, root: i32) -> AsyncTask<TorchTask<(), ()>> {
        let group = Arc::clone(&self.inner);
        let inner = Arc::clone(&model.inner);
        AsyncTask::new(TorchTask::new(
            move || lock(&inner).broadcast_from(&group, root),
            |_, ()| Ok(()),
        ))
    }

    /// Resolves once every rank has called it; fails after `timeoutSeconds` (default: the group's timeout).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn barrier(&self, timeout_seconds: Option<f64>) -> AsyncTask<TorchTask<(), ()>> {
        let group = Arc::clone(&self.inner);
        let timeout = timeout_seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64);
        AsyncTask::new(TorchTask::new(move || group.barrier(timeout), |_, ()| Ok(())))
    }

    /// Leaves the group; later collectives fail. Models still attached to it fail at their next step.
    #[napi]
    pub fn destroy(&self) -> napi::Result<()> {
        let group = Arc::clone(&self.inner);
        worker::run(move || {
            group.destroy();
            Ok(())
        })
    }
}

#[napi]
impl NativeModel {
    /// Data-parallel training: from now on each step averages the gradients over `group` between backward and
    /// the update, in buckets of at most `bucketMb` MiB (default 25, DDP's), and with `syncBatchNorm` batch norms
    /// that learn take their statistics over every rank's batch; `null` detaches the model again.
    #[napi]
    pub fn attach_process_group(
        &self,
        group: Option<&NativeProcessGroup>,
        bucket_mb: Option<f64>,
        sync_batch_norm: Option<bool>,
    ) -> napi::Result<()> {
        let group = group.map(|g| Arc::clone(&g.inner));
        self.now(move |m| m.attach_process_group(group, bucket_mb, sync_batch_norm == Some(true)))
    }
}
