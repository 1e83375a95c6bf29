//! Keeps one tenant's receivers from holding up everyone's deliveries, in
//! each webhook function container:
//!
//! - **A circuit breaker per host.** After [`BREAKER_FAILURES`] tries in a
//!   row to one host that got no answer at all (a timeout, a refused
//!   connection, a failed TLS handshake: the tries that hold a delivery
//!   slot longest), deliveries to it are not tried for [`BREAKER_OPEN_MS`],
//!   doubling at each reopening up to [`BREAKER_MAX_OPEN_MS`]. They wait,
//!   with no try used; then one probe goes through: an answer (any status)
//!   closes the breaker, none reopens it.
//! - **A cap on one owner's POSTs in flight** (`WEBHOOK_OWNER_IN_FLIGHT`):
//!   over it, a delivery waits [`OWNER_BUSY_WAIT_MS`], with no try used.
//!
//! Both are per container (the function runs at most its event source's
//! `MaximumConcurrency` of them), kept in memory: nothing is written for
//! them, and a new container starts with every breaker closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Tries in a row without an answer that open a host's breaker.
pub const BREAKER_FAILURES: u32 = 3;
/// How long a breaker first stays open.
pub const BREAKER_OPEN_MS: i64 = 30_000;
/// The longest a breaker stays open.
pub const BREAKER_MAX_OPEN_MS: i64 = 300_000;
/// How long the probe after an open breaker holds off other tries.
pub const PROBE_MS: i64 = 15_000;
/// How long a delivery over its owner's in-flight cap waits.
pub const OWNER_BUSY_WAIT_MS: i64 = 5_000;

/// One host's breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Tries in a row that got no answer.
    pub failures: u32,
    /// Until when no try goes to the host.
    pub open_until: i64,
    /// How many times it opened since it was last closed.
    pub openings: u32,
}

impl Breaker {
    /// Whether a try may go now: `Ok(next)`, the breaker as the try leaves it
    /// (a probe holds off others), or `Err(wait_ms)`.
    pub fn admit(self, now_ms: i64) -> Result<Breaker, i64> {
        if self.open_until > now_ms {
            return Err(self.open_until - now_ms);
        }
        if self.failures >= BREAKER_FAILURES {
            return Ok(Breaker {
                open_until: now_ms + PROBE_MS,
                ..self
            });
        }
        Ok(self)
    }

    /// The breaker after a try that got an answer (`answered`) or none.
    pub fn after(self, answered: bool, now_ms: i64) -> Breaker {
        if answered {
            return Breaker::default();
        }
        let failures = self.failures + 1;
        if failures < BREAKER_FAILURES {
            return Breaker { failures, ..self };
        }
        let open_ms = BREAKER_OPEN_MS
            .saturating_mul(1 << self.openings.min(8))
            .min(BREAKER_MAX_OPEN_MS);
        Breaker {
            failures,
            open_until: now_ms + open_ms,
            openings: self.openings + 1,
        }
    }
}

/// Why a delivery waits instead of trying now.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// The host's breaker is open for this long.
    HostDown(i64),
    /// The owner has its cap of POSTs in flight.
    OwnerBusy(i64),
}

impl Wait {
    /// How long to wait, in milliseconds.
    pub fn ms(&self) -> i64 {
        match self {
            Wait::HostDown(ms) | Wait::OwnerBusy(ms) => *ms,
        }
    }
}

/// The breakers and in-flight counts of one container.
pub struct DeliveryGuards {
    breakers: Mutex<HashMap<String, Breaker>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    owner_cap: u32,
}

/// An owner's place among its POSTs in flight; given back when dropped.
pub struct InFlight {
    owner: String,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap();
        if let Some(count) = counts.get_mut(&self.owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.owner);
            }
        }
    }
}

impl DeliveryGuards {
    /// Guards allowing each owner `owner_cap` POSTs at once (0: no cap).
    pub fn new(owner_cap: u32) -> Self {
        DeliveryGuards {
            breakers: Mutex::default(),
            in_flight: Arc::default(),
            owner_cap,
        }
    }

    /// A try of `owner` to `host` at `now_ms`: its place in flight, or why it waits.
    pub fn admit(&self, host: &str, owner: &str, now_ms: i64) -> Result<InFlight, Wait> {
        let mut counts = self.in_flight.lock().unwrap();
        let count = counts.get(owner).copied().unwrap_or(0);
        if self.owner_cap > 0 && count >= self.owner_cap {
            return Err(Wait::OwnerBusy(OWNER_BUSY_WAIT_MS));
        }
        let mut breakers = self.breakers.lock().unwrap();
        let breaker = breakers.get(host).copied().unwrap_or_default();
        let admitted = breaker.admit(now_ms).map_err(Wait::HostDown)?;
        if admitted != Breaker::default() {
            breakers.insert(host.to_owned(), admitted);
        }
        counts.insert(owner.to_owned(), count + 1);
        Ok(InFlight {
            owner: owner.to_owned(),
            counts: self.in_flight.clone(),
        })
    }

    /// Records how a try to `host` went: an answer of any status, or none.
    pub fn record(&self, host: &str, answered: bool, now_ms: i64) {
        let mut breakers = self.breakers.lock().unwrap();
        let next = breakers.get(host).copied().unwrap_or_default().after(answered, now_ms);
        if next == Breaker::default() {
            breakers.remove(host);
        } else {
            breakers.insert(host.to_owned(), next);
        }
    }
}

/// The host (and port) part of a callback URL, lower-cased: what a breaker
/// is kept for.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_after_failures_in_a_row_doubles_and_closes_on_an_answer() {
        let t = 1_000_000;
        let mut b = Breaker::default();
        for _ in 0..BREAKER_FAILURES - 1 {
            b = b.admit(t).unwrap().after(false, t);
            assert!(b.admit(t).is_ok(), "still closed: {b:?}");
        }
        b = b.admit(t).unwrap().after(false, t);
        assert_eq!(b.admit(t), Err(BREAKER_OPEN_MS));
        assert_eq!(b.admit(t + BREAKER_OPEN_MS - 1), Err(1));
        // One probe after the pause holds off the others…
        let probing = b.admit(t + BREAKER_OPEN_MS).unwrap();
        assert_eq!(probing.admit(t + BREAKER_OPEN_MS), Err(PROBE_MS));
        // …and without an answer it reopens for twice as long.
        let reopened = probing.after(false, t + BREAKER_OPEN_MS);
        assert_eq!(reopened.admit(t + BREAKER_OPEN_MS), Err(2 * BREAKER_OPEN_MS));
        // Never longer than the bound.
        let mut long = reopened;
        for _ in 0..20 {
            long = long.after(false, t);
        }
        assert_eq!(long.admit(t), Err(BREAKER_MAX_OPEN_MS));
        // An answer of any status closes it.
        assert_eq!(long.after(true, t), Breaker::default());
        // An answer between failures starts the count again.
        let b = Breaker::default()
            .after(false, t)
            .after(false, t)
            .after(true, t)
            .after(false, t);
        assert!(b.admit(t).is_ok());
    }

    #[test]
    fn an_owner_has_its_cap_in_flight_and_gets_each_place_back() {
        let guards = DeliveryGuards::new(2);
        let first = guards.admit("a.example", "alice", 0).unwrap();
        let _second = guards.admit("b.example", "alice", 0).unwrap();
        assert_eq!(
            guards.admit("c.example", "alice", 0).err(),
            Some(Wait::OwnerBusy(OWNER_BUSY_WAIT_MS))
        );
        assert!(
            guards.admit("c.example", "bob", 0).is_ok(),
            "another owner is not held up"
        );
        drop(first);
        assert!(guards.admit("c.example", "alice", 0).is_ok());
        let uncapped = DeliveryGuards::new(0);
        let held: Vec<_> = (0..50).map(|_| uncapped.admit("h", "alice", 0).unwrap()).collect();
        assert_eq!(held.len(), 50);
    }

    #[test]
    fn a_hosts_breaker_holds_only_that_host() {
        let guards = DeliveryGuards::new(0);
        for _ in 0..BREAKER_FAILURES {
            let _place = guards.admit("down.example", "alice", 0).unwrap();
            guards.record("down.example", false, 0);
        }
        assert_eq!(
            guards.admit("down.example", "bob", 0).err(),
            Some(Wait::HostDown(BREAKER_OPEN_MS))
        );
        assert!(guards.admit("up.example", "alice", 0).is_ok());
    }

    #[test]
    fn hosts_are_the_urls_authority_lower_cased() {
        let table = [
            ("https://Hooks.Example.com/a/b?c", "hooks.example.com"),
            ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
            ("https://user@h.example#f", "h.example"),
            ("https://[::1]:9/", "[::1]:9"),
        ];
        for (url, host) in table {
            assert_eq!(host_of(url), host, "{url}");
        }
    }
}
