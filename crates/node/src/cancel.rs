//! A flag JavaScript sets (from an AbortSignal) and long native loops check between batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi_derive::napi;

/// Cancels native work that is under way: evaluation stops at its next batch.
#[napi]
#[derive(Default)]
pub struct CancelToken {
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the work holding this token to stop; it rejects with code `CANCELLED`.
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
