//! Memory accounting for the data path (BEHAVIOUR §13): one daemon-wide budget shared by every
//! connection, drawn on in chunks so that the common command touches no shared state.
//!
//! Design: each [`Connection`](super::Connection) counts the bytes it holds for its peer
//! (Data-Out buffers and Data-In reserved by its commands, PDUs held for a CmdSN gap, output
//! not yet written) in a plain local counter, and holds a *grant* from the [`MemBudget`]
//! that covers that count. The grant grows in [`CHUNK`] steps (one compare-and-swap per step,
//! all or nothing) when a command needs more than it covers, and shrinks back to one chunk
//! when the connection goes idle; a command that fits the grant it already has costs an
//! addition and a comparison. A connection keeps one chunk from login to close, so a logged-in
//! connection costs the budget [`CHUNK`] and logins stop (login status 0x0302) once the budget
//! cannot give that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Granularity of grants: 256 KiB (1024 idle connections take 256 MiB, the default budget).
pub const CHUNK: usize = 256 << 10;

/// The daemon-wide budget (`max_buffer_bytes`). Clones share it.
#[derive(Clone)]
pub struct MemBudget(Arc<Shared>);

struct Shared {
    limit: usize,
    granted: AtomicUsize,
}

impl MemBudget {
    pub fn new(limit: usize) -> Self {
        MemBudget(Arc::new(Shared {
            limit,
            granted: AtomicUsize::new(0),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes granted to connections now.
    pub fn granted(&self) -> usize {
        self.0.granted.load(Ordering::Relaxed)
    }

    /// Whether `n` more bytes could be granted now (a login needs one [`CHUNK`]).
    pub fn has_room(&self, n: usize) -> bool {
        self.granted().saturating_add(n) <= self.0.limit
    }

    /// Take `n` bytes now, all or nothing, held until the [`Hold`] is dropped: what a login
    /// takes at its admission, so that two logins can never both be admitted on the same
    /// room (a check followed by a later take could).
    pub fn hold(&self, n: usize) -> Option<Hold> {
        self.try_take(n).then(|| Hold {
            budget: self.clone(),
            n,
        })
    }

    /// Take `n` bytes, all or nothing.
    fn try_take(&self, n: usize) -> bool {
        let mut cur = self.0.granted.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|x| *x <= self.0.limit) else {
                return false;
            };
            match self.0.granted.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Take `n` bytes even past the limit (a connection's base chunk: admitted at login).
    fn take_anyway(&self, n: usize) {
        self.0.granted.fetch_add(n, Ordering::Relaxed);
    }

    fn give(&self, n: usize) {
        self.0.granted.fetch_sub(n, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for MemBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBudget")
            .field("limit", &self.0.limit)
            .field("granted", &self.granted())
            .finish()
    }
}

/// Budgets compare by identity (the same shared budget).
impl PartialEq for MemBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for MemBudget {}

/// Bytes taken from the budget by [`MemBudget::hold`], given back on drop.
#[derive(Debug)]
pub struct Hold {
    budget: MemBudget,
    n: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.give(self.n);
    }
}

/// One connection's grant from the budget (no budget: unlimited, for tests and tools).
#[derive(Debug)]
pub(crate) struct Grant {
    budget: Option<MemBudget>,
    held: usize,
}

impl Grant {
    /// A grant of one chunk, taken even past the limit (the login was admitted with a
    /// [`Hold`] of one chunk, which its connection drops once this grant exists).
    pub fn new(budget: Option<MemBudget>) -> Self {
        let held = if budget.is_some() { CHUNK } else { 0 };
        if let Some(b) = &budget {
            b.take_anyway(held);
        }
        Grant { budget, held }
    }

    /// Make the grant cover `used` bytes; `false` (nothing taken) when the budget cannot.
    pub fn cover(&mut self, used: usize) -> bool {
        let Some(b) = &self.budget else {
            return true;
        };
        if used <= self.held {
            return true;
        }
        let want = used.div_ceil(CHUNK).saturating_mul(CHUNK);
        if b.try_take(want - self.held) {
            self.held = want;
            true
        } else {
            false
        }
    }

    /// Whether `n` more bytes could ever be granted to this connection (the budget less its
    /// own base chunk); a command needing more must not wait for them.
    pub fn could_ever(&self, n: usize) -> bool {
        self.budget
            .as_ref()
            .is_none_or(|b| n.saturating_add(CHUNK) <= b.limit())
    }

    /// Give back what `used` bytes do not need, keeping one chunk.
    pub fn trim(&mut self, used: usize) {
        let Some(b) = &self.budget else {
            return;
        };
        let keep = used.div_ceil(CHUNK).max(1) * CHUNK;
        if self.held > keep {
            b.give(self.held - keep);
            self.held = keep;
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give(self.held);
        }
    }
}
