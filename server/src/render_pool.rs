//! The threads that draw PNGs: a fixed set of plain OS threads, never the
//! async workers, each at a lower CPU priority (Linux: nice 10) so that when
//! the CPUs are busy drawing cards, requests that need no image (create,
//! checks, cached images) still get the CPU first.
//!
//! Jobs wait in a queue bounded by the caller (the application takes one
//! permit of a semaphore per job, as many permits as threads), so the queue
//! never holds more than one job per thread.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Niceness of the drawing threads (0 is normal, 19 the lowest priority).
pub const RENDER_NICE: i32 = 10;

/// A fixed pool of drawing threads. Dropping it ends the threads once their
/// queue is empty.
pub struct RenderPool {
    tx: Mutex<Sender<Job>>,
}

/// The pool has no thread left (every one failed to start, or panicked).
#[derive(Debug)]
pub struct PoolGone;

impl RenderPool {
    /// Starts `threads` drawing threads (at least 1), named
    /// `khqr-render-<n>`. A thread that cannot be started is skipped; with none
    /// at all every [`RenderPool::run`] answers [`PoolGone`].
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("khqr-render-{n}"))
                .spawn(move || worker(&rx));
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start a render thread");
            }
        }
        RenderPool { tx: Mutex::new(tx) }
    }

    /// Runs `f` on a drawing thread and waits (asynchronously) for its result.
    ///
    /// # Errors
    /// [`PoolGone`] if no thread took the job, or `f` panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolGone> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| PoolGone)?;
        result.await.map_err(|_| PoolGone)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        let Ok(job) = job else { return };
        // A panicking drawing routine drops the job's reply (the caller sees
        // `PoolGone` and answers 500); the thread goes on with the next job.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Lowers this thread's priority (Linux: the nice value is per thread). A
/// failure only costs the priority, so it is logged and ignored.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), RENDER_NICE)
    {
        tracing::warn!(error = %e, "cannot lower the render thread's priority");
    }
}
