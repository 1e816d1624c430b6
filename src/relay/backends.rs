//! Backend choice and health, as one worker sees it.
//!
//! Owns per backend: its address, the worker's outstanding count, consecutive timeouts, the
//! down mark and when it last answered. Picks the healthy backend with the fewest outstanding
//! queries; marks a backend down after it keeps timing out and up again on any answer (probes
//! included). Health is per worker on purpose: each worker sees plenty of traffic to judge by,
//! and sharing would put a cross-core write on the per-query path. It never does I/O.

use std::net::SocketAddr;
use std::time::Instant;

/// Consecutive timeouts (no answer in between) that mark a backend down.
pub const DOWN_AFTER_TIMEOUTS: u32 = 3;

#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Queries this worker has waiting on this backend (UDP or TCP).
    pub outstanding: u32,
    /// Timeouts since the last answer.
    pub consecutive_timeouts: u32,
    /// Marked down: skipped while any other backend is up, and probed.
    pub down: bool,
    /// When it last answered anything that matched a query (or a probe).
    pub last_answer: Option<Instant>,
}

/// A health change worth a log line.
#[derive(Debug, PartialEq, Eq)]
pub enum HealthChange {
    None,
    WentDown,
    CameBack,
}

pub struct Backends {
    list: Vec<Backend>,
    /// Where the next scan starts, so equal loads spread instead of piling on the first.
    rotor: usize,
}

impl Backends {
    pub fn new(addrs: &[SocketAddr]) -> Backends {
        Backends {
            list: addrs
                .iter()
                .map(|&addr| Backend { addr, outstanding: 0, consecutive_timeouts: 0, down: false, last_answer: None })
                .collect(),
            rotor: 0,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Backend> {
        self.list.iter()
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.list[index].addr
    }

    /// The backend for a query. `exclude` is the backend a retry must avoid; a retry gets
    /// `None` when no other backend is up. A first attempt always gets one: when every backend
    /// is marked down, the one that answered most recently, so that a wrong down mark never
    /// turns a working resolver into SERVFAIL for everyone.
    pub fn pick(&mut self, exclude: Option<usize>) -> Option<usize> {
        let n = self.list.len();
        self.rotor = if self.rotor + 1 >= n { 0 } else { self.rotor + 1 };
        let mut best: Option<usize> = None;
        for step in 0..n {
            let i = (self.rotor + step) % n;
            let b = &self.list[i];
            if b.down || Some(i) == exclude {
                continue;
            }
            if best.is_none_or(|j| b.outstanding < self.list[j].outstanding) {
                best = Some(i);
            }
        }
        if best.is_some() || exclude.is_some() {
            return best;
        }
        (0..n).max_by_key(|&i| (self.list[i].last_answer, std::cmp::Reverse(i)))
    }

    /// Marked down by this worker.
    pub fn is_down(&self, index: usize) -> bool {
        self.list[index].down
    }

    pub fn add_outstanding(&mut self, index: usize) {
        self.list[index].outstanding += 1;
    }

    pub fn sub_outstanding(&mut self, index: usize) {
        let b = &mut self.list[index];
        b.outstanding = b.outstanding.saturating_sub(1);
    }

    /// A matching answer arrived: the backend is alive.
    pub fn answered(&mut self, index: usize, now: Instant) -> HealthChange {
        let b = &mut self.list[index];
        b.consecutive_timeouts = 0;
        b.last_answer = Some(now);
        if b.down {
            b.down = false;
            HealthChange::CameBack
        } else {
            HealthChange::None
        }
    }

    /// An attempt timed out.
    pub fn timed_out(&mut self, index: usize) -> HealthChange {
        let b = &mut self.list[index];
        b.consecutive_timeouts += 1;
        if !b.down && b.consecutive_timeouts >= DOWN_AFTER_TIMEOUTS {
            b.down = true;
            HealthChange::WentDown
        } else {
            HealthChange::None
        }
    }

    /// Backends marked down, to probe.
    pub fn down(&self) -> impl Iterator<Item = usize> + '_ {
        self.list.iter().enumerate().filter(|(_, b)| b.down).map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Backends {
        let addrs: Vec<SocketAddr> =
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].iter().map(|s| s.parse().unwrap()).collect();
        Backends::new(&addrs)
    }

    #[test]
    fn picks_fewest_outstanding() {
        let mut b = three();
        b.add_outstanding(0);
        b.add_outstanding(2);
        for _ in 0..5 {
            assert_eq!(b.pick(None), Some(1));
        }
    }

    #[test]
    fn equal_loads_spread() {
        let mut b = three();
        let picks: std::collections::HashSet<_> = (0..6).map(|_| b.pick(None).unwrap()).collect();
        assert_eq!(picks.len(), 3);
    }

    #[test]
    fn down_after_repeated_timeouts_and_back_on_answer() {
        let mut b = three();
        assert_eq!(b.timed_out(1), HealthChange::None);
        assert_eq!(b.timed_out(1), HealthChange::None);
        assert_eq!(b.timed_out(1), HealthChange::WentDown);
        for _ in 0..6 {
            assert_ne!(b.pick(None), Some(1));
        }
        assert_eq!(b.down().collect::<Vec<_>>(), vec![1]);
        assert_eq!(b.answered(1, Instant::now()), HealthChange::CameBack);
        assert!(b.down().next().is_none());
    }

    #[test]
    fn retry_needs_another_healthy_backend() {
        let mut b = three();
        for i in [1, 2] {
            for _ in 0..DOWN_AFTER_TIMEOUTS {
                b.timed_out(i);
            }
        }
        assert_eq!(b.pick(Some(0)), None);
        assert_eq!(b.pick(Some(1)), Some(0));
    }

    #[test]
    fn all_down_still_uses_the_most_recent_answerer() {
        let mut b = three();
        let t0 = Instant::now();
        b.answered(0, t0);
        b.answered(2, t0 + std::time::Duration::from_millis(5));
        for i in 0..3 {
            for _ in 0..DOWN_AFTER_TIMEOUTS {
                b.timed_out(i);
            }
        }
        assert_eq!(b.pick(None), Some(2));
    }
}
