//! A job's webhook and how its delivery went.

use serde::{Deserialize, Serialize};

/// A webhook a job's end is announced to, and how its delivery went.
/// The state is per generation ([`JobRecord::generation`]): a redriven job
/// announces its new end afresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Where the announcement is POSTed (checked at submit and again before
    /// every delivery: `https`, a public address).
    pub url: String,
    /// The generation the fields below describe.
    #[serde(default)]
    pub generation: u32,
    /// Deliveries tried so far.
    #[serde(default)]
    pub attempts: u32,
    /// The HTTP status of the last try, when it got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last try failed (no answer, a refused address, a non-2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last try was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<i64>,
    /// Not before this time is the next try made (the backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// A try is in flight until this time (its POST's own bound plus a
    /// margin): taken by one copy of the announcement in a conditional
    /// write before it POSTs, so other copies make no POST of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_until: Option<i64>,
    /// When a try got a 2xx: delivered, nothing more is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    /// When the last allowed try failed: the announcement went to the
    /// webhook dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
}

impl Callback {
    /// A callback to `url`, nothing delivered yet.
    pub fn new(url: &str) -> Self {
        Callback {
            url: url.to_owned(),
            ..Callback::default()
        }
    }

    /// This callback's state for generation `generation`: itself, or a
    /// fresh start when it described an earlier one.
    pub fn for_generation(&self, generation: u32) -> Callback {
        if self.generation == generation {
            self.clone()
        } else {
            Callback {
                generation,
                ..Callback::new(&self.url)
            }
        }
    }

    /// Whether nothing more will be sent for this generation.
    pub fn settled(&self) -> bool {
        self.delivered_at.is_some() || self.failed_at.is_some()
    }
}
