//! One long-lived thread runs every libtorch call. libtorch's OpenMP pool belongs to the thread that
//! starts it; keeping all work on one thread keeps one pool, instead of one per libuv worker, each spinning.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

use crate::errors::{panicked, to_napi};

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

fn queue() -> Sender<Job> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name("convkit-torch".into())
                .spawn(move || {
                    convkit_core::runtime::init();
                    for job in rx {
                        job();
                    }
                })
                .expect("spawning the libtorch thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Sends `f` to the libtorch thread; the receiver gets its outcome.
fn submit<T: Send + 'static>(f: impl FnOnce() -> convkit_core::Result<T> + Send + 'static) -> napi::Result<Outcome<T>> {
    let (tx, rx) = channel();
    let job: Job = Box::new(move || {
        let out = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    queue().send(job).map_err(|_| {
        napi::Error::new(
            napi::Status::GenericFailure,
            "[INTERNAL] the libtorch thread has stopped",
        )
    })?;
    Ok(rx)
}

/// Waits for the outcome of a submitted job. Errors and panics come back as JS errors.
fn outcome<T>(rx: Outcome<T>) -> napi::Result<T> {
    match rx.recv() {
        Ok(Ok(result)) => result.map_err(to_napi),
        Ok(Err(payload)) => Err(panicked(payload)),
        Err(_) => Err(napi::Error::new(
            napi::Status::GenericFailure,
            "[INTERNAL] the libtorch thread dropped a job",
        )),
    }
}

/// Runs `f` on the libtorch thread and waits for it. Errors and panics come back as JS errors.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> convkit_core::Result<T> + Send + 'static) -> napi::Result<T> {
    outcome(submit(f)?)
}

type Outcome<T> = Receiver<std::thread::Result<convkit_core::Result<T>>>;

/// A napi Task whose work is a closure run on the libtorch thread. The closure is sent there when the task is
/// made, on the JS thread, so work reaches libtorch in the order JavaScript asked for it, whatever order libuv's
/// pool runs the tasks' `compute` in; `compute` only waits for the outcome. The training loop relies on this to
/// queue step b + 1 before asking for step b's report, so that a GPU has the next step's kernels while the host
/// reads. (A task dropped unrun, e.g. cancelled, still has its closure run; its outcome is discarded.)
pub struct TorchTask<T: Send + 'static, J> {
    sent: Option<napi::Result<Outcome<T>>>,
    convert: fn(napi::Env, T) -> napi::Result<J>,
}

impl<T: Send + 'static, J> TorchTask<T, J> {
    pub fn new(
        job: impl FnOnce() -> convkit_core::Result<T> + Send + 'static,
        convert: fn(napi::Env, T) -> napi::Result<J>,
    ) -> Self {
        TorchTask {
            sent: Some(submit(job)),
            convert,
        }
    }
}

impl<T: Send + 'static, J: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName> napi::Task
    for TorchTask<T, J>
{
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<T> {
        outcome(self.sent.take().expect("a task computes once")?)
    }

    fn resolve(&mut self, env: napi::Env, output: T) -> napi::Result<J> {
        (self.convert)(env, output)
    }
}
