//! One long-lived thread runs every libtorch call. libtorch's OpenMP pool belongs to the thread that
//! starts it; keeping all work on one thread keeps one pool, instead of one per libuv worker, each spinning.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Condvar, Mutex, OnceLock};

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
fn submit<T: Send + 'static>(
    f: impl FnOnce() -> convkit_core::Result<T> + Send + 'static,
) -> napi::Result<Receiver<std::thread::Result<convkit_core::Result<T>>>> {
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
fn outcome<T>(rx: Receiver<std::thread::Result<convkit_core::Result<T>>>) -> napi::Result<T> {
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

/// Tasks reach the libtorch thread in the order JavaScript created them, whatever order libuv's pool starts
/// their `compute` in: each task takes a turn number when it is made (on the JS thread) and sends its job only
/// once every earlier turn has sent its own or was dropped unrun. The training loop relies on this to queue step
/// b + 1 before asking for step b's report, so that a GPU always has the next step's kernels while the host reads.
/// No turn waits on a later one: libuv starts queued work first in, first out, so an earlier task has always
/// started (and sends at once) by the time a later one waits.
struct Turns {
    issued: u64,
    serving: u64,
    /// Turns dropped before their task ran, skipped when `serving` reaches them.
    dropped: BTreeSet<u64>,
}

static TURNS: Mutex<Turns> = Mutex::new(Turns {
    issued: 0,
    serving: 0,
    dropped: BTreeSet::new(),
});
static TURN_CHANGED: Condvar = Condvar::new();

fn lock_turns() -> std::sync::MutexGuard<'static, Turns> {
    TURNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn take_turn() -> u64 {
    let mut turns = lock_turns();
    turns.issued += 1;
    turns.issued - 1
}

/// Ends `turn` (sent or dropped) and moves on past any dropped turns that follow it.
fn end_turn(turns: &mut Turns, turn: u64) {
    if turns.serving != turn {
        turns.dropped.insert(turn);
        return;
    }
    turns.serving += 1;
    while turns.dropped.remove(&turns.serving) {
        turns.serving += 1;
    }
    TURN_CHANGED.notify_all();
}

/// A napi Task whose compute is a closure run on the libtorch thread.
pub struct TorchTask<T: Send + 'static, J> {
    job: Option<Box<dyn FnOnce() -> convkit_core::Result<T> + Send>>,
    convert: fn(napi::Env, T) -> napi::Result<J>,
    turn: u64,
}

impl<T: Send + 'static, J> TorchTask<T, J> {
    pub fn new(
        job: impl FnOnce() -> convkit_core::Result<T> + Send + 'static,
        convert: fn(napi::Env, T) -> napi::Result<J>,
    ) -> Self {
        TorchTask {
            job: Some(Box::new(job)),
            convert,
            turn: take_turn(),
        }
    }
}

impl<T: Send + 'static, J> Drop for TorchTask<T, J> {
    fn drop(&mut self) {
        // A task dropped without running (cancelled, or never queued) must not hold up the tasks after it.
        if self.job.is_some() {
            end_turn(&mut lock_turns(), self.turn);
        }
    }
}

impl<T: Send + 'static, J: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName> napi::Task
    for TorchTask<T, J>
{
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<T> {
        let job = self.job.take().expect("a task computes once");
        let sent = {
            let mut turns = lock_turns();
            while turns.serving != self.turn {
                turns = TURN_CHANGED
                    .wait(turns)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let sent = submit(job);
            end_turn(&mut turns, self.turn);
            sent
        };
        outcome(sent?)
    }

    fn resolve(&mut self, env: napi::Env, output: T) -> napi::Result<J> {
        (self.convert)(env, output)
    }
}
