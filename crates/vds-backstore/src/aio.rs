//! Asynchronous store I/O: a store whose I/O completes later on a thread of its own (RBD
//! through librbd's `rbd_aio_*`) offers [`AioStore`] through [`crate::BackingStore::aio`].
//!
//! The caller hands over the operation and owned buffers ([`AioBufs`]); the store calls the
//! [`AioDone`] callback exactly once, from whatever thread finishes the I/O, with the result
//! and the buffers back. Nobody waits: the data path submits from its I/O thread and the
//! callback wakes that thread's task (vds-target sends the completion down the connection's
//! channel). The buffers are owned, so they live as long as the I/O does whatever happens to
//! the command that asked for it.

use std::io;

/// One store operation, with its data in the [`AioBufs`] that travel with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AioOp {
    /// Read `len` bytes at `offset` into `data_in` (made `len` bytes long).
    Read { offset: u64, len: usize },
    /// Write `data_out[..len]` at `offset`.
    Write { offset: u64, len: usize },
    /// Make every completed write durable.
    Flush,
    /// Compare `data_out[..len]` with the `len` bytes at `offset` and, only when they are
    /// equal, write `data_out[len..2 * len]` there, atomically. A difference is
    /// [`AioError::Miscompare`] and changes nothing.
    CompareAndWrite { offset: u64, len: usize },
    /// Write `data_out[..block]` again and again over the `len` bytes at `offset` (`len` a
    /// multiple of `block`).
    WriteSame { offset: u64, len: u64, block: usize },
    /// Deallocate `len` bytes at `offset`; they read back as zeroes.
    Discard { offset: u64, len: u64 },
}

impl AioOp {
    /// Whether the operation changes the medium (for the sense of a failure).
    pub fn writes(&self) -> bool {
        !matches!(self, AioOp::Read { .. })
    }
}

/// The buffers an operation owns while it runs, handed back with its result.
#[derive(Debug, Default)]
pub struct AioBufs {
    pub data_in: Vec<u8>,
    pub data_out: Vec<u8>,
}

/// Why an asynchronous operation did not succeed.
#[derive(Debug)]
pub enum AioError {
    /// The store failed the I/O.
    Io(io::Error),
    /// COMPARE AND WRITE: the first differing byte, counted from the operation's offset.
    Miscompare(u64),
}

/// Called once when an operation ends, on the thread that ended it: it must not block, and it
/// must not drop the last reference to the store (a store closed from its own completion
/// thread could wait for itself), so it only hands the result on.
pub type AioDone = Box<dyn FnOnce(Result<(), AioError>, AioBufs) + Send>;

/// A store that completes I/O later without a waiting thread.
pub trait AioStore: Send + Sync {
    /// Whether [`AioOp::CompareAndWrite`] of `len` bytes at `offset` is one atomic operation
    /// of the store; a caller does any other COMPARE AND WRITE its own way.
    fn compare_and_write_in_one(&self, offset: u64, len: u64) -> bool;
    /// Start `op`. `done` is called exactly once, perhaps before `submit` returns (an
    /// operation the store refuses at once), perhaps from another thread. The ranges have
    /// been checked by the caller; a store still refuses one outside it (`InvalidInput`).
    fn submit(&self, op: AioOp, bufs: AioBufs, done: AioDone);
}
