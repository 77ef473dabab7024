//! Notifications (BEHAVIOUR.md §9): one [`Event`] per change, broadcast to every subscriber,
//! and the clock that stamps them (a trait so tests can control time).

use time::OffsetDateTime;
use uuid::Uuid;
use vds_model::{EventKind, ObjectKind};

/// One notification: `{"object_type": "lun", "event": "modify", "code": 110, "id": ..., "time": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What kind of object changed.
    pub object_type: ObjectKind,
    /// Arrive, depart, modify.
    pub event: EventKind,
    /// The `VDS_NF_*` code.
    pub code: u32,
    /// The object's id.
    pub id: Uuid,
    /// When the provider committed the change.
    pub time: OffsetDateTime,
}

impl Event {
    /// `time` in RFC 3339.
    pub fn time_rfc3339(&self) -> String {
        self.time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.time.unix_timestamp().to_string())
    }
}

/// Where the provider reads the time of day.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
