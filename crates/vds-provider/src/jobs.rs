//! Asynchronous operations (`IVdsAsync`, BEHAVIOUR.md §7): a registry of jobs with percent,
//! wait (with timeout) and cancel. The work itself runs on a provider worker thread; this
//! module only keeps the job's state and wakes waiters.
//!
//! Cancellation has a commit point: before it the worker notices the request and ends the job
//! `VDS_E_OPERATION_CANCELED` having undone its work; once the worker is committing, cancel
//! answers `VDS_E_CANCEL_TOO_LATE`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use uuid::Uuid;
use vds_model::{AsyncOutputType, Hresult, Job, JobOutput, JobState};

use crate::VdsError;

/// What a job's work answers: its HRESULT and output, or the error it ends with.
pub(crate) type JobResult = Result<(Hresult, Option<JobOutput>), VdsError>;

/// Runs `work` on a new thread named `name` and finishes `handle` with what it answers. A
/// thread that cannot start finishes the job with `E_OUTOFMEMORY`, which is also the answer.
pub(crate) fn run_on_thread(
    handle: &Arc<JobHandle>,
    name: String,
    work: impl FnOnce(&JobHandle) -> JobResult + Send + 'static,
) -> Result<(), VdsError> {
    let h = handle.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let r = work(&h);
            h.finish(r);
        })
        .map(|_| ())
        .map_err(|e| {
            let err = VdsError::new(
                Hresult::E_OUTOFMEMORY,
                format!("cannot start a worker thread: {e}"),
            );
            handle.finish(Err(err.clone()));
            err
        })
}

/// How many finished jobs are remembered (oldest forgotten first).
const KEEP_FINISHED: usize = 4096;

struct JobInner {
    job: Job,
    cancel_requested: bool,
    committing: bool,
    /// When the job's record was last written to the board.
    published: Option<Instant>,
}

/// Where a gateway shows its jobs to the others (docs/SCALEOUT.md): each job's record written
/// at its start, at most once a second while it runs, and at its end.
pub(crate) trait Board: Send + Sync {
    /// Writes (or rewrites) a job's record.
    fn publish(&self, job: &Job);
    /// Every record on the board (this gateway's included).
    fn records(&self) -> Vec<Job>;
}

/// How often a running job's progress is written to the board at most.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// One job, shared by the registry and its worker.
pub(crate) struct JobHandle {
    inner: Mutex<JobInner>,
    done: Condvar,
    board: Option<Arc<dyn Board>>,
}

impl JobHandle {
    /// Snapshot of the job.
    pub(crate) fn job(&self) -> Job {
        self.inner.lock().job.clone()
    }

    /// Sets the running percentage (clamped to 0-99).
    pub(crate) fn set_percent(&self, percent: u32) {
        let mut g = self.inner.lock();
        if g.job.state == JobState::Running {
            g.job.percent = percent.min(99);
        }
        let due = g.published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY);
        if let (Some(board), true) = (&self.board, due) {
            g.published = Some(Instant::now());
            let job = g.job.clone();
            drop(g);
            board.publish(&job);
        }
    }

    /// Whether a cancel was requested (checked by the worker before its commit point).
    pub(crate) fn cancel_requested(&self) -> bool {
        self.inner.lock().cancel_requested
    }

    /// Enters the commit point: from now on cancel is too late. Returns `false` (and does not
    /// enter) when a cancel was already requested.
    pub(crate) fn begin_commit(&self) -> bool {
        let mut g = self.inner.lock();
        if g.cancel_requested {
            return false;
        }
        g.committing = true;
        true
    }

    /// Ends the job.
    pub(crate) fn finish(&self, result: Result<(Hresult, Option<JobOutput>), VdsError>) {
        let mut g = self.inner.lock();
        match result {
            Ok((hr, output)) => {
                g.job.state = JobState::Succeeded;
                g.job.hresult = hr;
                g.job.output = output;
                g.job.message = None;
            }
            Err(e) if e.hresult == Hresult::VDS_E_OPERATION_CANCELED => {
                g.job.state = JobState::Canceled;
                g.job.hresult = e.hresult;
                g.job.message = Some(e.message);
            }
            Err(e) => {
                g.job.state = JobState::Failed;
                g.job.hresult = e.hresult;
                g.job.message = Some(e.message);
            }
        }
        g.job.percent = 100;
        let job = g.job.clone();
        drop(g);
        if let Some(board) = &self.board {
            board.publish(&job);
        }
        self.done.notify_all();
    }
}

type JobMap = (HashMap<Uuid, Arc<JobHandle>>, VecDeque<Uuid>);

/// Every job the provider remembers.
#[derive(Default)]
pub(crate) struct Jobs {
    /// Jobs by id, and ids in start order.
    map: Mutex<JobMap>,
    /// The other gateways' jobs and where this one's are shown (cluster mode only).
    board: std::sync::OnceLock<Arc<dyn Board>>,
}

impl Jobs {
    /// Registers a new running job.
    pub(crate) fn start(&self, operation: AsyncOutputType, object: Uuid) -> Arc<JobHandle> {
        let id = Uuid::new_v4();
        let handle = Arc::new(JobHandle {
            inner: Mutex::new(JobInner {
                job: Job {
                    id,
                    operation,
                    object,
                    state: JobState::Running,
                    percent: 0,
                    hresult: Hresult::VDS_E_OPERATION_PENDING,
                    message: None,
                    output: None,
                },
                cancel_requested: false,
                committing: false,
                published: Some(Instant::now()),
            }),
            done: Condvar::new(),
            board: self.board.get().cloned(),
        });
        if let Some(board) = &handle.board {
            board.publish(&handle.job());
        }
        let mut g = self.map.lock();
        g.0.insert(id, handle.clone());
        g.1.push_back(id);
        // Forget the oldest finished jobs beyond the limit (running ones are always kept).
        while g.1.len() > KEEP_FINISHED {
            let Some(pos) = g.1.iter().position(|j| {
                g.0.get(j)
                    .is_none_or(|h| h.inner.lock().job.state != JobState::Running)
            }) else {
                break;
            };
            if let Some(old) = g.1.remove(pos) {
                g.0.remove(&old);
            }
        }
        handle
    }

    /// From now on jobs are shown on `board`, and the others' read from it.
    pub(crate) fn set_board(&self, board: Arc<dyn Board>) {
        let _ = self.board.set(board);
    }

    /// The other gateways' jobs: the board's records of ids this gateway does not run.
    fn remote(&self) -> Vec<Job> {
        let Some(board) = self.board.get() else {
            return Vec::new();
        };
        let records = board.records();
        let g = self.map.lock();
        records
            .into_iter()
            .filter(|j| !g.0.contains_key(&j.id))
            .collect()
    }

    fn get(&self, id: Uuid) -> Result<Arc<JobHandle>, VdsError> {
        self.map.lock().0.get(&id).cloned().ok_or_else(|| {
            VdsError::new(
                Hresult::VDS_E_OBJECT_NOT_FOUND,
                format!("job {id} does not exist (or finished long ago and was forgotten)"),
            )
        })
    }

    /// `QueryStatus`.
    pub(crate) fn query(&self, id: Uuid) -> Result<Job, VdsError> {
        match self.get(id) {
            Ok(h) => Ok(h.job()),
            Err(e) => self.remote().into_iter().find(|j| j.id == id).ok_or(e),
        }
    }

    /// Every job, oldest first (then the other gateways' jobs, in id order).
    pub(crate) fn list(&self) -> Vec<Job> {
        let mut out: Vec<Job> = {
            let g = self.map.lock();
            g.1.iter()
                .filter_map(|id| g.0.get(id))
                .map(|h| h.job())
                .collect()
        };
        out.extend(self.remote());
        out
    }

    /// `Wait`: until the job ends or `timeout` passes; returns the job as it is then.
    pub(crate) fn wait(&self, id: Uuid, timeout: Option<Duration>) -> Result<Job, VdsError> {
        let h = self.get(id)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = h.inner.lock();
        while g.job.state == JobState::Running {
            match deadline {
                Some(d) => {
                    if h.done.wait_until(&mut g, d).timed_out() {
                        break;
                    }
                }
                None => h.done.wait(&mut g),
            }
        }
        Ok(g.job.clone())
    }

    /// `Cancel`: `Ok` with the job when the request was taken, else the VDS answer.
    pub(crate) fn cancel(&self, id: Uuid) -> Result<Job, VdsError> {
        let h = self.get(id)?;
        let mut g = h.inner.lock();
        match g.job.state {
            JobState::Canceled => Err(VdsError::new(
                Hresult::VDS_E_OPERATION_CANCELED,
                format!("job {id} was already canceled"),
            )),
            JobState::Succeeded | JobState::Failed => Err(VdsError::new(
                Hresult::VDS_E_CANCEL_TOO_LATE,
                format!("job {id} has already finished"),
            )),
            JobState::Running if g.committing => Err(VdsError::new(
                Hresult::VDS_E_CANCEL_TOO_LATE,
                format!("job {id} is committing its result"),
            )),
            JobState::Running => {
                g.cancel_requested = true;
                Ok(g.job.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_wait_and_cancel_answers() {
        let jobs = Jobs::default();
        let h = jobs.start(AsyncOutputType::CreateLun, Uuid::nil());
        let id = h.job().id;
        assert_eq!(
            jobs.query(id).unwrap().hresult,
            Hresult::VDS_E_OPERATION_PENDING
        );
        h.set_percent(150);
        assert_eq!(jobs.query(id).unwrap().percent, 99);
        // Wait with a timeout returns the running job.
        let j = jobs.wait(id, Some(Duration::from_millis(20))).unwrap();
        assert_eq!(j.state, JobState::Running);
        let h2 = h.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            h2.finish(Ok((Hresult::S_OK, None)));
        });
        let j = jobs.wait(id, None).unwrap();
        t.join().unwrap();
        assert_eq!(
            (j.state, j.percent, j.hresult),
            (JobState::Succeeded, 100, Hresult::S_OK)
        );
        assert_eq!(
            jobs.cancel(id).unwrap_err().hresult,
            Hresult::VDS_E_CANCEL_TOO_LATE
        );
    }

    #[test]
    fn cancel_before_commit_point_then_again() {
        let jobs = Jobs::default();
        let h = jobs.start(AsyncOutputType::ExtendLun, Uuid::nil());
        let id = h.job().id;
        assert!(jobs.cancel(id).is_ok());
        assert!(h.cancel_requested());
        assert!(!h.begin_commit());
        h.finish(Err(VdsError::new(
            Hresult::VDS_E_OPERATION_CANCELED,
            "canceled",
        )));
        assert_eq!(jobs.query(id).unwrap().state, JobState::Canceled);
        assert_eq!(
            jobs.cancel(id).unwrap_err().hresult,
            Hresult::VDS_E_OPERATION_CANCELED
        );
    }

    #[test]
    fn cancel_while_committing_is_too_late() {
        let jobs = Jobs::default();
        let h = jobs.start(AsyncOutputType::ExtendLun, Uuid::nil());
        assert!(h.begin_commit());
        assert_eq!(
            jobs.cancel(h.job().id).unwrap_err().hresult,
            Hresult::VDS_E_CANCEL_TOO_LATE
        );
        assert_eq!(
            jobs.query(Uuid::new_v4()).unwrap_err().hresult,
            Hresult::VDS_E_OBJECT_NOT_FOUND
        );
    }
}
