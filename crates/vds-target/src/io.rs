//! The data path's I/O threads: one single-threaded tokio runtime per thread, each with its
//! own reactor, and every connection pinned to one of them for its whole life.
//!
//! Why not the daemon's multi-threaded runtime: with work stealing, a socket event caught by
//! one worker's `epoll_wait` wakes a parked sibling through a futex to run the task, and the
//! task can migrate between cores; perf showed those wake-ups at about a quarter of vdsd's CPU
//! at queue depth 1 over 8 sessions, and they take the other core from a local initiator. A
//! thread per core with its own connections (as SPDK and Seastar do) shares nothing on the I/O
//! path: no lock, no cross-thread wake-up, the connection's buffers stay in one core's cache.
//!
//! A new connection goes to the thread with the fewest live connections. Blocking work
//! (commands a store refuses to run without blocking) goes to that runtime's blocking pool.
//! The threads stop when the last [`IoGuard`] is dropped; a connection still open then is
//! dropped with its runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// One I/O thread as the dispatcher sees it.
struct IoThread {
    handle: Handle,
    /// Connections now served by this thread.
    conns: Arc<AtomicUsize>,
}

/// Where connections are sent.
pub(crate) struct IoPool {
    threads: Vec<IoThread>,
    next: AtomicUsize,
}

/// Owner of the I/O threads: dropping the last one stops them.
pub(crate) struct IoGuard {
    stops: Vec<oneshot::Sender<()>>,
}

impl Drop for IoGuard {
    fn drop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

/// Counts a connection on its thread for as long as it lives.
pub(crate) struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The default number of I/O threads: one per core the process may run on.
pub fn default_io_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl IoPool {
    /// Start `n` I/O threads (at least one).
    pub fn start(n: usize) -> std::io::Result<(IoPool, IoGuard)> {
        let n = n.max(1);
        let mut threads = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("vds-io-{i}-blocking"))
                .build()?;
            let handle = rt.handle().clone();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("vds-io-{i}"))
                .spawn(move || {
                    // Runs every task of the thread until the guard goes.
                    let _ = rt.block_on(stop_rx);
                    // Commands still on the blocking pool finish on their own; do not wait.
                    rt.shutdown_background();
                })?;
            threads.push(IoThread {
                handle,
                conns: Arc::new(AtomicUsize::new(0)),
            });
            stops.push(stop_tx);
        }
        Ok((
            IoPool {
                threads,
                next: AtomicUsize::new(0),
            },
            IoGuard { stops },
        ))
    }

    /// The thread a new connection goes to (fewest live connections, ties in turn), with
    /// the slot that counts it there.
    pub fn pick(&self) -> (&Handle, ConnSlot) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.threads.len();
        let mut best = start % n;
        let mut least = usize::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            let c = self.threads[i].conns.load(Ordering::Relaxed);
            if c < least {
                least = c;
                best = i;
            }
        }
        let t = &self.threads[best];
        t.conns.fetch_add(1, Ordering::Relaxed);
        (&t.handle, ConnSlot(t.conns.clone()))
    }

    /// Threads in the pool.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_the_least_loaded_thread_and_slots_give_back() {
        let (pool, guard) = IoPool::start(3).unwrap();
        assert_eq!(pool.len(), 3);
        let slots: Vec<_> = (0..6).map(|_| pool.pick().1).collect();
        let counts: Vec<usize> = pool
            .threads
            .iter()
            .map(|t| t.conns.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![2, 2, 2]);
        drop(slots);
        assert!(pool
            .threads
            .iter()
            .all(|t| t.conns.load(Ordering::Relaxed) == 0));
        // Work spawned on a picked thread runs there.
        let (h, _slot) = pool.pick();
        let (tx, rx) = std::sync::mpsc::channel();
        h.spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        let name = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert!(name.starts_with("vds-io-"), "{name}");
        drop(guard);
    }

    #[test]
    fn zero_threads_means_one() {
        let (pool, _g) = IoPool::start(0).unwrap();
        assert_eq!(pool.len(), 1);
    }
}
