//! Backpressure: submit refuses new work at once (`503` with a
//! `Retry-After`) while its queue holds more waiting messages than
//! `QUEUE_MAX_DEPTHS` allows, instead of accepting work that cannot be done
//! soon. The depth is sampled, not read per request: a [`DepthGauge`] keeps
//! one reading per queue for `QUEUE_DEPTH_SAMPLE_MS`, so a busy submit
//! container makes at most one GetQueueAttributes per queue per interval,
//! and a refusal is at most that stale. A depth that cannot be read lets
//! work in (it fails open): the queue, not its gauge, is what must not be
//! overrun, and a store or queue outage has its own 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ports::JobQueue;

/// The longest `Retry-After` a busy queue asks for, in seconds.
pub const MAX_BUSY_RETRY_AFTER_SECONDS: u32 = 60;

/// Queue depths, each read at most once per sample interval.
pub struct DepthGauge {
    queue: Arc<dyn JobQueue>,
    max_age: Duration,
    samples: Mutex<HashMap<String, (Instant, u64)>>,
}

impl DepthGauge {
    /// A gauge over `queue` whose readings are reused for `max_age`.
    pub fn new(queue: Arc<dyn JobQueue>, max_age: Duration) -> Self {
        DepthGauge {
            queue,
            max_age,
            samples: Mutex::default(),
        }
    }

    /// The waiting messages of the queue named `name`, as last sampled (at
    /// most `max_age` ago), or read now. When it cannot be read: the last
    /// sample, however old, or `None`.
    pub async fn depth(&self, name: &str) -> Option<u64> {
        let cached = self.samples.lock().unwrap().get(name).copied();
        if let Some((at, depth)) = cached {
            if at.elapsed() < self.max_age {
                return Some(depth);
            }
        }
        match self.queue.depth(name).await {
            Ok(depth) => {
                self.samples
                    .lock()
                    .unwrap()
                    .insert(name.to_owned(), (Instant::now(), depth));
                Some(depth)
            }
            Err(err) => {
                tracing::warn!(queue = name, error = %err, "could not sample the queue's depth; letting work in");
                cached.map(|(_, depth)| depth)
            }
        }
    }
}

/// `Some(Retry-After seconds)` when `depth` waiting messages are at or over
/// `max`: the sample interval (at least 1 s) times how many times over the
/// limit the queue is, at most [`MAX_BUSY_RETRY_AFTER_SECONDS`]. `None`
/// when there is room.
pub fn busy_retry_after(depth: u64, max: u64, sample: Duration) -> Option<u32> {
    if max == 0 || depth < max {
        return None;
    }
    let interval = sample.as_secs_f64().ceil().max(1.0) as u64;
    let times_over = depth / max;
    Some(
        interval
            .saturating_mul(times_over)
            .min(u64::from(MAX_BUSY_RETRY_AFTER_SECONDS)) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryJobQueue;
    use crate::ports::JobMessage;
    use crate::JobId;

    fn message() -> JobMessage {
        JobMessage {
            job_id: JobId::random(),
            enqueued_at: 0,
            generation: 0,
            limit: None,
        }
    }

    #[test]
    fn retry_after_grows_with_how_far_over_the_limit_the_queue_is() {
        let five = Duration::from_secs(5);
        assert_eq!(busy_retry_after(99, 100, five), None);
        assert_eq!(busy_retry_after(100, 100, five), Some(5));
        assert_eq!(busy_retry_after(250, 100, five), Some(10));
        assert_eq!(busy_retry_after(100_000, 100, five), Some(MAX_BUSY_RETRY_AFTER_SECONDS));
        assert_eq!(busy_retry_after(3, 3, Duration::ZERO), Some(1), "at least a second");
    }

    #[tokio::test]
    async fn the_depth_is_read_once_per_interval_not_per_request() {
        let queue = Arc::new(MemoryJobQueue::new(&["fast"]));
        let gauge = DepthGauge::new(queue.clone(), Duration::from_secs(3600));
        queue.enqueue("fast", &message(), 0).await.unwrap();
        for _ in 0..50 {
            assert_eq!(gauge.depth("fast").await, Some(1));
        }
        assert_eq!(queue.depth_reads(), 1);
        queue.enqueue("fast", &message(), 0).await.unwrap();
        assert_eq!(
            gauge.depth("fast").await,
            Some(1),
            "stale by design, within the interval"
        );

        let fresh = DepthGauge::new(queue.clone(), Duration::ZERO);
        assert_eq!(fresh.depth("fast").await, Some(2));
        assert_eq!(
            fresh.depth("nope").await,
            None,
            "unreadable and never sampled: no depth"
        );
    }
}
