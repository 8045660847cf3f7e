//! The per-event time budget of a VRL program, counted in the time its
//! thread runs: on a busy machine a worker can wait longer than the budget
//! for a core, and a valid event must not fail for that.
//!
//! The wall clock is read first (cheap); only past the budget is the
//! thread's CPU time read (a system call), and from then on the program has
//! the budget again in CPU time. A program that really runs too long is
//! stopped after about twice the budget; one the machine kept waiting goes on.
//!
//! The wall clock is the kernel's coarse monotonic clock (a few nanoseconds
//! to read, millisecond resolution), so the budget can be looked at every
//! few VRL checkpoints: a program of a few statements that each double a
//! string (27 of them passed 3 GiB) is stopped after the statement that
//! crosses the budget, not after 128 checkpoints it never reaches.

use std::time::Duration;

/// One event's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: Duration,
    started: Duration,
    /// The thread's CPU time when the wall clock first passed the limit.
    mark: Option<Duration>,
}

impl Budget {
    /// A budget of `limit`, from now.
    pub(crate) fn start(limit: Duration) -> Self {
        Self { limit, started: coarse_now(), mark: None }
    }

    /// Whether the program has spent its budget.
    pub(crate) fn spent(&mut self) -> bool {
        let wall = coarse_now().saturating_sub(self.started);
        self.spent_at(wall, thread_cpu_time)
    }

    /// [`Budget::spent`] with `wall` since the start and the thread's `cpu`
    /// time (`None` where the platform has no thread clock: wall time only).
    fn spent_at(&mut self, wall: Duration, cpu: impl FnOnce() -> Option<Duration>) -> bool {
        if wall <= self.limit {
            return false;
        }
        let Some(cpu) = cpu() else { return true };
        match self.mark {
            None => {
                self.mark = Some(cpu);
                false
            }
            Some(mark) => cpu.saturating_sub(mark) >= self.limit,
        }
    }
}

/// The monotonic clock, coarse (a jiffy's resolution, read without a system call).
#[cfg(target_os = "linux")]
fn coarse_now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
fn coarse_now() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// The CPU time the calling thread has run.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(u64::try_from(now.tv_sec).ok()?, u32::try_from(now.tv_nsec).ok()?))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn time_the_thread_waited_for_a_core_is_not_charged() {
        let mut budget = Budget::start(50 * MS);
        assert!(!budget.spent_at(10 * MS, || panic!("no CPU clock read within the budget")));
        // Past 50 ms of wall time, 12 ms of it on a core: the mark.
        assert!(!budget.spent_at(60 * MS, || Some(12 * MS)));
        // A second later, 30 ms more on a core: still within the budget.
        assert!(!budget.spent_at(1060 * MS, || Some(42 * MS)));
        // 50 ms on a core since the mark: spent.
        assert!(budget.spent_at(1100 * MS, || Some(62 * MS)));
    }

    #[test]
    fn without_a_thread_clock_the_wall_clock_decides() {
        let mut budget = Budget::start(50 * MS);
        assert!(!budget.spent_at(50 * MS, || None));
        assert!(budget.spent_at(51 * MS, || None));
    }

    #[cfg(unix)]
    #[test]
    fn the_thread_clock_runs_while_the_thread_works() {
        let before = thread_cpu_time().expect("a thread clock");
        let started = std::time::Instant::now();
        let mut ran = Duration::ZERO;
        while ran < 5 * MS && started.elapsed() < Duration::from_secs(30) {
            std::hint::black_box((0..1000_u64).sum::<u64>());
            ran = thread_cpu_time().expect("a thread clock") - before;
        }
        assert!(ran >= 5 * MS, "the thread clock moved {ran:?} in {:?}", started.elapsed());
    }
}
