//! Gradient averaging between backward and the optimizer step, as DDP's reducer does it: the gradients of the
//! trainable parameters, in declaration order, packed into flat buckets of at most `bucket_bytes` and one element
//! type, summed over all ranks, divided by the world size and copied back.
//!
//! The buckets go out all at once after backward; they do not overlap with backward itself (tch exposes no
//! autograd hooks to start one while later layers are still being differentiated).

use std::sync::Arc;
use std::time::Instant;

use tch::{Kind, Tensor};

use super::ProcessGroup;
use crate::error::Result;
use crate::weights::Param;

/// Averages gradients over a process group; [`crate::Trainer`] calls it after each backward.
#[derive(Debug)]
pub struct GradSync {
    pub group: Arc<ProcessGroup>,
    /// The largest bucket, in bytes (DDP's default is 25 MiB).
    pub bucket_bytes: usize,
    /// This rank's vote to stop after the next step (cleared by it); it rides along in the last bucket, so
    /// agreeing on an interrupt costs no extra round trip.
    pub vote_stop: bool,
}

/// What one averaging did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SyncOutcome {
    /// Whether any rank voted to stop after this step.
    pub stop_requested: bool,
    /// Wall time of the averaging: packing, the all-reduce and unpacking.
    pub seconds: f64,
}

impl GradSync {
    pub fn new(group: Arc<ProcessGroup>, bucket_bytes: usize) -> Self {
        GradSync {
            group,
            bucket_bytes: bucket_bytes.max(1),
            vote_stop: false,
        }
    }

    /// Replaces each trainable parameter's gradient by its mean over all ranks. A parameter without a gradient
    /// on this rank contributes zeros (and keeps no gradient here).
    pub fn average(&mut self, params: &[Param]) -> Result<SyncOutcome> {
        let started = Instant::now();
        let _guard = tch::no_grad_guard();
        let grads: Vec<(Tensor, bool)> = params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| {
                let g = p.tensor.grad();
                if g.defined() {
                    Ok((g, true))
                } else {
                    p.tensor.f_zeros_like().map(|z| (z, false))
                }
            })
            .collect::<Result<_, tch::TchError>>()?;
        // Consecutive gradients of one element type, up to bucket_bytes each (a larger gradient gets its own).
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut bytes = 0usize;
        for (i, (g, _)) in grads.iter().enumerate() {
            let size = g.numel() * g.kind().elt_size_in_bytes();
            let fits = buckets
                .last()
                .is_some_and(|b: &Vec<usize>| grads[b[0]].0.kind() == g.kind() && bytes + size <= self.bucket_bytes);
            if fits {
                buckets.last_mut().expect("checked").push(i);
                bytes += size;
            } else {
                buckets.push(vec![i]);
                bytes = size;
            }
        }
        let device = self.group.comm_device();
        let mut flats = Vec::with_capacity(buckets.len() + 1);
        for bucket in &buckets {
            let views = bucket
                .iter()
                .map(|&i| grads[i].0.f_reshape([-1]))
                .collect::<Result<Vec<_>, _>>()?;
            flats.push(Tensor::f_cat(&views, 0)?.f_to_device(device)?.f_contiguous()?);
        }
        let vote = Tensor::f_from_slice(&[if std::mem::take(&mut self.vote_stop) {
            1f64
        } else {
            0f64
        }])?;
        match flats.last_mut() {
            Some(last) => {
                let kind = last.kind();
                *last = Tensor::f_cat(&[last.shallow_clone(), vote.f_to_kind(kind)?.f_to_device(device)?], 0)?;
            }
            None => flats.push(vote.f_to_kind(Kind::Float)?.f_to_device(device)?),
        }
        self.group.allreduce_sum(&mut flats, "all-reduce of the gradients")?;
        let last = flats.last().expect("at least the vote");
        let stop_requested = last.f_get(last.numel() as i64 - 1)?.f_double_value(&[])? > 0.5;
        let world = self.group.world_size() as f64;
        for (bucket, flat) in buckets.iter().zip(flats.iter_mut()) {
            let _ = flat.f_div_scalar_(world)?;
            let mut offset = 0;
            for &i in bucket {
                let (g, defined) = &grads[i];
                let n = g.numel() as i64;
                if *defined {
                    let mut dst = g.shallow_clone();
                    dst.f_copy_(&flat.f_narrow(0, offset, n)?.f_view(g.size().as_slice())?)?;
                }
                offset += n;
            }
        }
        Ok(SyncOutcome {
            stop_requested,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
