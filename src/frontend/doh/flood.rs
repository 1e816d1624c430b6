//! The HTTP/2 flood budgets of one connection: how many frames that carry no request a client
//! may send (PING, SETTINGS, RST_STREAM, and PRIORITY, WINDOW_UPDATE, empty and unknown
//! frames), as token buckets that refill with time. A client over a budget has its connection
//! closed, and only its own: the floods of CVE-2019-9512 (ping), CVE-2019-9515 (settings),
//! CVE-2019-9514 and CVE-2023-44487 (reset, "rapid reset"), CVE-2019-9513 and CVE-2019-9518
//! (priority, empty frames) each cost the server work per frame while asking for nothing.
//!
//! `h2` charges every frame header the client sends here (`charge_at`), on top of its own
//! protocol checks (the stream cap, the header list size, flow control).
//!
//! Owns: the buckets. Never: reads the clock (the caller's `now` is the only time).

use std::time::Instant;

use super::frames::{kind, FrameHead, ACK, END_HEADERS};
use super::MAX_HEADER_LIST;

/// Which budget a frame was charged to: the label of `dotgate_doh_flood_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flood {
    Ping,
    Settings,
    Reset,
    /// A header block (HEADERS and its CONTINUATIONs) longer, compressed, than
    /// `MAX_HEADER_LIST`: no DoH request is near that. (A block under it that decodes to more
    /// gets h2's 431 on its stream; one that decodes to several times more, h2's GOAWAY.)
    Headers,
    /// PRIORITY, WINDOW_UPDATE, DATA/HEADERS/CONTINUATION with nothing in them and no end of
    /// stream, and frame types HTTP/2 does not know.
    Other,
}

impl Flood {
    pub fn label(self) -> &'static str {
        match self {
            Flood::Ping => "ping",
            Flood::Settings => "settings",
            Flood::Reset => "rst_stream",
            Flood::Headers => "headers",
            Flood::Other => "other",
        }
    }
}

/// A bucket: `burst` frames at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub burst: u32,
    pub per_second: u32,
}

/// The budgets. A browser sends a PING now and then, one SETTINGS at start and a few later,
/// and resets a stream when a tab closes; a resolver's client library, fewer. The bursts are
/// far above that and far below a flood's thousands per second.
pub const PING: Rate = Rate { burst: 20, per_second: 2 };
pub const SETTINGS: Rate = Rate { burst: 10, per_second: 1 };
/// Resets: a client cancelling every query in flight at once (`--max-in-flight` of them) is
/// legitimate; doing it over and over is the rapid-reset attack.
pub const RESET_PER_SECOND: u32 = 50;
/// WINDOW_UPDATEs come with answers (a client acknowledges what it read): a DoH client
/// answered 20,000 times a second on one connection may send thousands.
pub const OTHER: Rate = Rate { burst: 1_000, per_second: 5_000 };

#[derive(Clone, Copy, Debug)]
struct Bucket {
    rate: Rate,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn new(rate: Rate) -> Bucket {
        Bucket { rate, tokens: f64::from(rate.burst), at: None }
    }

    /// Takes one token; `false` when there is none.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * f64::from(self.rate.per_second);
            self.tokens = (self.tokens + refill).min(f64::from(self.rate.burst));
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's budgets.
#[derive(Clone, Debug)]
pub struct FloodBudget {
    ping: Bucket,
    settings: Bucket,
    reset: Bucket,
    other: Bucket,
    /// Octets of the header block in progress.
    header_block: u32,
}

impl FloodBudget {
    /// Budgets for a connection allowed `max_in_flight` streams at once.
    pub fn new(max_in_flight: u32) -> FloodBudget {
        let reset = Rate { burst: max_in_flight.saturating_mul(2).max(100), per_second: RESET_PER_SECOND };
        FloodBudget {
            ping: Bucket::new(PING),
            settings: Bucket::new(SETTINGS),
            reset: Bucket::new(reset),
            other: Bucket::new(OTHER),
            header_block: 0,
        }
    }

    /// Charges one frame the client sent at `now`; `Err` names the budget it exhausted.
    pub fn charge_at(&mut self, head: &FrameHead, now: Instant) -> Result<(), Flood> {
        if head.kind == kind::HEADERS || head.kind == kind::CONTINUATION {
            self.header_block =
                if head.kind == kind::HEADERS { head.len } else { self.header_block.saturating_add(head.len) };
            if self.header_block > MAX_HEADER_LIST {
                return Err(Flood::Headers);
            }
            if head.flags & END_HEADERS != 0 {
                self.header_block = 0;
            }
        }
        let (bucket, flood) = match head.kind {
            kind::PING if head.flags & ACK == 0 => (&mut self.ping, Flood::Ping),
            kind::SETTINGS if head.flags & ACK == 0 => (&mut self.settings, Flood::Settings),
            kind::RST_STREAM => (&mut self.reset, Flood::Reset),
            kind::PRIORITY | kind::WINDOW_UPDATE => (&mut self.other, Flood::Other),
            kind::DATA | kind::HEADERS | kind::CONTINUATION if head.len == 0 && !head.ends_stream() => {
                (&mut self.other, Flood::Other)
            }
            kind::DATA
            | kind::HEADERS
            | kind::CONTINUATION
            | kind::PING
            | kind::SETTINGS
            | kind::GOAWAY
            | kind::PUSH_PROMISE => return Ok(()),
            _ => (&mut self.other, Flood::Other),
        };
        if bucket.take(now) {
            Ok(())
        } else {
            Err(flood)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: u8, flags: u8, len: u32) -> FrameHead {
        FrameHead { kind, flags, len, stream: 0 }
    }

    #[test]
    fn each_budget_holds_its_burst_and_then_refuses() {
        for (frame, flood, burst) in [
            (head(kind::PING, 0, 8), Flood::Ping, PING.burst),
            (head(kind::SETTINGS, 0, 6), Flood::Settings, SETTINGS.burst),
            (head(kind::RST_STREAM, 0, 4), Flood::Reset, 200),
            (head(kind::PRIORITY, 0, 5), Flood::Other, OTHER.burst),
            (head(kind::DATA, 0, 0), Flood::Other, OTHER.burst),
            (head(0x42, 0, 3), Flood::Other, OTHER.burst),
        ] {
            let mut budget = FloodBudget::new(100);
            for i in 0..burst {
                assert_eq!(budget.charge_at(&frame, Instant::now()), Ok(()), "{flood:?} frame {i}");
            }
            assert_eq!(budget.charge_at(&frame, Instant::now()), Err(flood));
        }
    }

    #[test]
    fn a_header_block_over_the_cap_is_refused_whether_in_one_frame_or_in_many() {
        let mut budget = FloodBudget::new(100);
        assert_eq!(budget.charge_at(&head(kind::HEADERS, END_HEADERS, MAX_HEADER_LIST), Instant::now()), Ok(()));
        assert_eq!(
            budget.charge_at(&head(kind::HEADERS, END_HEADERS, MAX_HEADER_LIST + 1), Instant::now()),
            Err(Flood::Headers)
        );
        let mut budget = FloodBudget::new(100);
        assert_eq!(budget.charge_at(&head(kind::HEADERS, 0, 10_000), Instant::now()), Ok(()));
        assert_eq!(budget.charge_at(&head(kind::CONTINUATION, 0, 6_000), Instant::now()), Ok(()));
        assert_eq!(
            budget.charge_at(&head(kind::CONTINUATION, END_HEADERS, 1_000), Instant::now()),
            Err(Flood::Headers)
        );
        // Each block counts alone.
        let mut budget = FloodBudget::new(100);
        for _ in 0..1_000 {
            assert_eq!(budget.charge_at(&head(kind::HEADERS, 0, 10_000), Instant::now()), Ok(()));
            assert_eq!(budget.charge_at(&head(kind::CONTINUATION, END_HEADERS, 6_000), Instant::now()), Ok(()));
        }
    }

    #[test]
    fn requests_answers_and_acks_are_never_charged() {
        let mut budget = FloodBudget::new(100);
        for _ in 0..100_000 {
            for frame in [
                head(kind::HEADERS, 0x5, 30),
                head(kind::DATA, 0x1, 40),
                head(kind::DATA, 0x1, 0),
                head(kind::PING, ACK, 8),
                head(kind::SETTINGS, ACK, 0),
            ] {
                assert_eq!(budget.charge_at(&frame, Instant::now()), Ok(()));
            }
        }
    }

    #[test]
    fn a_bucket_refills_with_time() {
        let mut bucket = Bucket::new(Rate { burst: 2, per_second: 10 });
        let start = Instant::now();
        assert!(bucket.take(start) && bucket.take(start) && !bucket.take(start));
        assert!(bucket.take(start + std::time::Duration::from_millis(100)));
        assert!(!bucket.take(start + std::time::Duration::from_millis(100)));
        // Never above the burst, however long the wait.
        let later = start + std::time::Duration::from_secs(3600);
        assert!(bucket.take(later) && bucket.take(later) && !bucket.take(later));
    }
}
