//! Configuration from environment variables, read once per process when
//! the binary starts to play its function (`longrun_bootstrap::run`). Every variable is listed in docs/configuration.md; the
//! SAM template sets them on AWS and the local runtime sets the same ones.

mod settings;

pub use settings::Settings;

use std::collections::BTreeMap;
use std::env;
use std::time::Duration;

use crate::record::Priority;

/// The largest request body a job record can hold beside its other attributes.
pub const MAX_REQUEST_BYTES_LIMIT: usize = 350_000;

/// The longest `MAX_DELAY_SECONDS` (and its default): 365 days.
pub const MAX_DELAY_SECONDS_LIMIT: u32 = 365 * 86_400;

/// The longest `RESULT_URL_TTL_SECONDS`: 7 days, the most an S3 presigned URL may live.
pub const MAX_RESULT_URL_TTL_SECONDS: u64 = 7 * 86_400;

/// A configuration value that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named required variable is unset or blank.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable is set but unusable: it does not parse, or breaks a rule
    /// relating it to another one.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable at fault.
        name: &'static str,
        /// Why its value is refused.
        reason: String,
    },
}

/// Everything the functions read from the environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// `JOBS_TABLE`: the DynamoDB table of job records.
    pub jobs_table: String,
    /// `JOBS_BUCKET`: the S3 bucket holding job inputs (`inputs/`) and results (`results/`).
    pub jobs_bucket: String,
    /// `QUEUE_URLS`: `name=url,…` of the work queues (e.g. `fast=…,slow=…`).
    pub queue_urls: BTreeMap<String, String>,
    /// `DEFAULT_QUEUE`: the queue a job type goes to unless routed elsewhere.
    pub default_queue: String,
    /// `JOB_QUEUES`: `job_type=queue,…` routes job types to queues.
    pub job_queues: BTreeMap<String, String>,
    /// `PRIORITY_QUEUES`: `priority=queue,…` for `high` and `low` jobs (e.g.
    /// `high=urgent,low=bulk`); a priority not named, and `normal`, goes
    /// where `JOB_QUEUES` routes the job's type.
    pub priority_queues: BTreeMap<Priority, String>,
    /// `QUEUE_MAX_DEPTHS`: `queue=messages,…`: submit answers `503` with a
    /// `Retry-After` while that many messages wait in the queue (visible plus
    /// delayed). A queue not named has no limit.
    pub queue_max_depths: BTreeMap<String, u64>,
    /// `BATCH_CONCURRENCY`: how many messages of one SQS batch a worker
    /// invocation runs at once (at least 1). Each running job holds its own
    /// buffers (a thumbnail up to `MAX_IMAGE_MEMORY_BYTES`), so this times
    /// the largest job must fit the worker's memory.
    pub batch_concurrency: usize,
    /// `MAX_ACTIVE_JOBS_PER_OWNER`: the most QUEUED or RUNNING jobs one owner
    /// may have; a submit over it is `429` with a `Retry-After`. 0: no limit.
    pub max_active_jobs_per_owner: u32,
    /// `QUEUE_DEPTH_SAMPLE_MS`: how old a sampled queue depth may be before a
    /// process reads it again (one GetQueueAttributes per queue per interval,
    /// not per request); 0 reads it on every request.
    pub queue_depth_sample: Duration,
    /// `DEFAULT_MAX_ATTEMPTS`: attempts a job gets unless it asks for fewer/more.
    pub default_max_attempts: u32,
    /// `MAX_ATTEMPTS_LIMIT`: the most attempts a job may ask for; kept below the
    /// queues' `maxReceiveCount` so the DLQ only ever catches crashes and poison.
    pub max_attempts_limit: u32,
    /// `MAX_CLAIMS`: the most times a job is started (crashes and re-sends
    /// included) before it fails as `too_many_crashes`; above `MAX_ATTEMPTS_LIMIT`.
    pub max_claims: u32,
    /// `MAX_REQUEST_BYTES`: the largest `POST /jobs` body accepted (413 above).
    pub max_request_bytes: usize,
    /// `MAX_DELAY_SECONDS`: the longest `delay_seconds` accepted.
    pub max_delay_seconds: u32,
    /// `SCHEDULE_LOOKAHEAD_SECONDS`: a job whose start is further away than
    /// this gets no message at submit; the reconciler sends it once its start
    /// is this close, delayed to the start (1 to 900, SQS's longest delay).
    pub schedule_lookahead_seconds: u32,
    /// `JOB_RETENTION_DAYS`: how long a finished job's record (and so its idempotency key) lives, in seconds.
    pub job_retention_seconds: i64,
    /// `RESULT_URL_TTL_SECONDS`: lifetime of presigned result URLs, 1 s to
    /// [`MAX_RESULT_URL_TTL_SECONDS`].
    pub result_url_ttl: Duration,
    /// `PROGRESS_INTERVAL_MS`: the least time between two progress writes of one job.
    pub progress_interval: Duration,
    /// `MAX_STALLED_RUNS`: runs in a row that may run out of invocation time
    /// without saving a checkpoint before the job fails `no_progress`.
    pub max_stalled_runs: u32,
    /// `PROMOTE_TO_SLOW_QUEUE` (`true` unless `false`): a normal-priority
    /// job that runs out of the fast worker's time goes on in the slow queue.
    pub promote_to_slow_queue: bool,
    /// `MAX_UPLOAD_BYTES`: the largest input `POST /uploads` hands out a URL for.
    pub max_upload_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS`: lifetime of a presigned upload URL, 1 s to 1 hour.
    pub upload_url_ttl: Duration,
    /// `ENQUEUE_GRACE_SECONDS`: how long after submit (or `run_at`) a queued job counts as overdue.
    pub enqueue_grace_seconds: i64,
    /// `LEASE_SECONDS`: how long a claim or a heartbeat holds a job (and hides its message).
    pub lease_seconds: u32,
    /// `HEARTBEAT_SECONDS`: how often a running job's lease and message visibility are
    /// extended; at most half of `LEASE_SECONDS`.
    pub heartbeat_seconds: u32,
    /// `DEFAULT_JOB_TIMEOUT_SECONDS`: a job's deadline, from its first start, unless it asks otherwise.
    pub default_job_timeout_seconds: u32,
    /// `MAX_JOB_TIMEOUT_SECONDS`: the longest `timeout_seconds` a job may ask for.
    pub max_job_timeout_seconds: u32,
    /// `DEADLINE_SAFETY_MS`: a worker starts no job with less invocation time left than this,
    /// and stops a running job this long before the deadline.
    pub deadline_safety: Duration,
    /// `RETRY_BASE_SECONDS` / `RETRY_MAX_SECONDS`: exponential backoff (with equal jitter) between attempts.
    pub retry_base_seconds: u32,
    /// `RETRY_MAX_SECONDS`: the cap on that backoff.
    pub retry_max_seconds: u32,
    /// `ALLOW_ANONYMOUS`: lets requests without a caller identity in, all as
    /// the one owner `anonymous` (demos; never on a shared stack). Off: `401`.
    pub allow_anonymous: bool,
    /// `LEGACY_OWNER_NAMES`: owners named as before sources were namespaced
    /// (the bare JWT `sub`, the Lambda authorizer's value, the caller ARN),
    /// for a stack whose records carry those names. Off: `jwt:<iss>|<sub>`,
    /// `lambda:<owner>`, `iam:<account>|<principal id>`, which cannot collide.
    pub legacy_owner_names: bool,
    /// `WEBHOOK_ALLOW_INSECURE_TARGETS`: lets callbacks go to `http` URLs and
    /// to loopback and private addresses. Off (the default, and in every
    /// deployment): only `https` to public addresses. Test runtimes only.
    pub webhook_allow_insecure_targets: bool,
    /// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: the waits between webhook delivery
    /// tries, comma-separated (default `5,300,1800,7200,18000,36000,36000`:
    /// 8 tries over about 25 hours); after the last one the announcement
    /// goes to the webhook dead-letter queue.
    pub webhook_retry_schedule: Vec<u32>,
    /// `MAX_STREAMS_PER_OWNER` / `MAX_STREAMS_PER_TICKET`: event streams one
    /// owner may hold open at once (default 5), and one stream URL (default
    /// 2: a reconnect may overlap the stream it replaces); 0: no cap.
    pub stream_limits: crate::streams::StreamLimits,
    /// `LIMITS`: the per-key execution limits by name ([`crate::limits::parse_rules`]).
    pub limits: crate::limits::LimitRules,
    /// `WEBHOOK_OWNER_IN_FLIGHT`: POSTs of one owner's deliveries a webhook
    /// function container makes at once (default 4; 0: no cap); over it a
    /// delivery waits a few seconds, with no try used.
    pub webhook_owner_in_flight: u32,
    /// `WEBHOOK_SECRET_OVERLAP_SECONDS`: how long deliveries are still also
    /// signed with a webhook secret after it was replaced (default 86400).
    pub webhook_secret_overlap_seconds: i64,
    /// `EVENTS_URL`: the base URL of the event stream front door (the events
    /// function's URL); `POST /jobs/{id}/stream` hands out URLs under it.
    pub events_url: Option<String>,
    /// `STREAM_TICKET_TTL_SECONDS`: how long a stream URL may be opened
    /// (and reopened) after it was handed out (default 3600).
    pub stream_ticket_ttl_seconds: i64,
    /// `STREAM_MAX_SECONDS`: how long one event stream stays open before it
    /// ends and the client reconnects (default 300; the events function's
    /// timeout must be longer).
    pub stream_max_seconds: u64,
    /// `STREAM_POLL_MS`: how often an open stream reads its job (default 1000).
    pub stream_poll: Duration,
    /// `STREAM_TICKETS_PER_MINUTE`: stream URLs one owner may be handed
    /// per minute (default 60; 0: no limit).
    pub stream_tickets_per_minute: u32,
    /// `UPLOAD_URLS_PER_MINUTE`: upload URLs one owner may be handed per
    /// minute (default 60; 0: no limit).
    pub upload_urls_per_minute: u32,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the EMF metrics
    /// (default `longrun`; the template: `longrun/<stack name>`).
    pub metrics_namespace: String,
    /// The environment the rest was read from, for the settings each job
    /// type reads for itself in its own module (`MAX_CSV_RECORD_BYTES` in
    /// `longrun-jobs`' `report`, an app's own variables in its crate).
    pub settings: Settings,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in
    /// tests), which stays as the [`settings`](Self::settings) job types read.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let queue_urls = parse_pairs("QUEUE_URLS", &required("QUEUE_URLS")?)?;
        // Every variable that names queues names only those in QUEUE_URLS.
        let known_queue = |name: &'static str, queue: &str| {
            if queue_urls.contains_key(queue) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: format!("{queue:?} is not a queue in QUEUE_URLS"),
                })
            }
        };
        let default_queue = lookup("DEFAULT_QUEUE").unwrap_or_else(|| "fast".to_owned());
        known_queue("DEFAULT_QUEUE", &default_queue)?;
        let job_queues = parse_pairs("JOB_QUEUES", &lookup("JOB_QUEUES").unwrap_or_default())?;
        if let Some((job_type, queue)) = job_queues.iter().find(|(_, q)| !queue_urls.contains_key(*q)) {
            return Err(ConfigError::Invalid {
                name: "JOB_QUEUES",
                reason: format!("{job_type} routes to unknown queue {queue:?}"),
            });
        }
        let priority_queues = parse_pairs("PRIORITY_QUEUES", &lookup("PRIORITY_QUEUES").unwrap_or_default())?
            .into_iter()
            .map(|(priority, queue)| {
                let priority = Priority::parse(&priority).ok_or_else(|| ConfigError::Invalid {
                    name: "PRIORITY_QUEUES",
                    reason: format!("{priority:?} is not high, normal or low"),
                })?;
                known_queue("PRIORITY_QUEUES", &queue)?;
                Ok((priority, queue))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let queue_max_depths = parse_pairs("QUEUE_MAX_DEPTHS", &lookup("QUEUE_MAX_DEPTHS").unwrap_or_default())?
            .into_iter()
            .map(|(queue, depth)| {
                known_queue("QUEUE_MAX_DEPTHS", &queue)?;
                match depth.parse::<u64>() {
                    Ok(depth) if depth > 0 => Ok((queue, depth)),
                    _ => Err(ConfigError::Invalid {
                        name: "QUEUE_MAX_DEPTHS",
                        reason: format!("{queue}={depth}: the depth must be a whole number above 0"),
                    }),
                }
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let config = Config {
            jobs_table: required("JOBS_TABLE")?,
            jobs_bucket: required("JOBS_BUCKET")?,
            queue_urls,
            default_queue,
            job_queues,
            queue_max_depths,
            priority_queues,
            queue_depth_sample: Duration::from_millis(number(&lookup, "QUEUE_DEPTH_SAMPLE_MS", 5000)?),
            max_active_jobs_per_owner: number(&lookup, "MAX_ACTIVE_JOBS_PER_OWNER", 0)?,
            batch_concurrency: number(&lookup, "BATCH_CONCURRENCY", 10)?,
            default_max_attempts: number(&lookup, "DEFAULT_MAX_ATTEMPTS", 3)?,
            max_attempts_limit: number(&lookup, "MAX_ATTEMPTS_LIMIT", 5)?,
            max_claims: number(&lookup, "MAX_CLAIMS", 10)?,
            max_request_bytes: number(&lookup, "MAX_REQUEST_BYTES", 262_144)?,
            max_delay_seconds: number(&lookup, "MAX_DELAY_SECONDS", MAX_DELAY_SECONDS_LIMIT)?,
            schedule_lookahead_seconds: number(&lookup, "SCHEDULE_LOOKAHEAD_SECONDS", 900)?,
            job_retention_seconds: number::<i64>(&lookup, "JOB_RETENTION_DAYS", 7)? * 86_400,
            result_url_ttl: Duration::from_secs(number(&lookup, "RESULT_URL_TTL_SECONDS", 900)?),
            max_stalled_runs: number(&lookup, "MAX_STALLED_RUNS", 3)?,
            promote_to_slow_queue: number(&lookup, "PROMOTE_TO_SLOW_QUEUE", true)?,
            max_upload_bytes: number(&lookup, "MAX_UPLOAD_BYTES", 100 * 1024 * 1024)?,
            upload_url_ttl: Duration::from_secs(number(&lookup, "UPLOAD_URL_TTL_SECONDS", 300)?),
            progress_interval: Duration::from_millis(number(&lookup, "PROGRESS_INTERVAL_MS", 1000)?),
            enqueue_grace_seconds: number(&lookup, "ENQUEUE_GRACE_SECONDS", 120)?,
            lease_seconds: number(&lookup, "LEASE_SECONDS", 60)?,
            heartbeat_seconds: number(&lookup, "HEARTBEAT_SECONDS", 15)?,
            default_job_timeout_seconds: number(&lookup, "DEFAULT_JOB_TIMEOUT_SECONDS", 3600)?,
            max_job_timeout_seconds: number(&lookup, "MAX_JOB_TIMEOUT_SECONDS", 86_400)?,
            deadline_safety: Duration::from_millis(number(&lookup, "DEADLINE_SAFETY_MS", 3000)?),
            retry_base_seconds: number(&lookup, "RETRY_BASE_SECONDS", 2)?,
            retry_max_seconds: number(&lookup, "RETRY_MAX_SECONDS", 300)?,
            allow_anonymous: flag(&lookup, "ALLOW_ANONYMOUS")?,
            legacy_owner_names: flag(&lookup, "LEGACY_OWNER_NAMES")?,
            webhook_allow_insecure_targets: flag(&lookup, "WEBHOOK_ALLOW_INSECURE_TARGETS")?,
            webhook_retry_schedule: retry_schedule(lookup("WEBHOOK_RETRY_SCHEDULE_SECONDS"))?,
            webhook_secret_overlap_seconds: number(&lookup, "WEBHOOK_SECRET_OVERLAP_SECONDS", 86_400)?,
            webhook_owner_in_flight: number(&lookup, "WEBHOOK_OWNER_IN_FLIGHT", 4)?,
            stream_limits: crate::streams::StreamLimits {
                per_owner: number(&lookup, "MAX_STREAMS_PER_OWNER", 5)?,
                per_ticket: number(&lookup, "MAX_STREAMS_PER_TICKET", 2)?,
            },
            limits: crate::limits::parse_rules(&lookup("LIMITS").unwrap_or_default())?,
            events_url: lookup("EVENTS_URL").filter(|u| !u.trim().is_empty()),
            stream_ticket_ttl_seconds: number(&lookup, "STREAM_TICKET_TTL_SECONDS", 3600)?,
            stream_max_seconds: number(&lookup, "STREAM_MAX_SECONDS", 300)?,
            stream_poll: Duration::from_millis(number(&lookup, "STREAM_POLL_MS", 1000)?),
            stream_tickets_per_minute: number(&lookup, "STREAM_TICKETS_PER_MINUTE", 60)?,
            upload_urls_per_minute: number(&lookup, "UPLOAD_URLS_PER_MINUTE", 60)?,
            metrics_namespace: lookup("METRICS_NAMESPACE")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "longrun".to_owned()),
            settings: Settings::new(lookup),
        };
        if config.default_max_attempts == 0 || config.default_max_attempts > config.max_attempts_limit {
            return Err(ConfigError::Invalid {
                name: "DEFAULT_MAX_ATTEMPTS",
                reason: format!(
                    "must be between 1 and MAX_ATTEMPTS_LIMIT ({})",
                    config.max_attempts_limit
                ),
            });
        }
        if config.max_delay_seconds > MAX_DELAY_SECONDS_LIMIT {
            return Err(ConfigError::Invalid {
                name: "MAX_DELAY_SECONDS",
                reason: format!("at most {MAX_DELAY_SECONDS_LIMIT} (365 days)"),
            });
        }
        if !(1..=900).contains(&config.schedule_lookahead_seconds) {
            return Err(ConfigError::Invalid {
                name: "SCHEDULE_LOOKAHEAD_SECONDS",
                reason: "between 1 and 900 (SQS's longest message delay)".into(),
            });
        }
        if config.max_claims <= config.max_attempts_limit {
            return Err(ConfigError::Invalid {
                name: "MAX_CLAIMS",
                reason: format!("must be above MAX_ATTEMPTS_LIMIT ({})", config.max_attempts_limit),
            });
        }
        if config.max_request_bytes > MAX_REQUEST_BYTES_LIMIT {
            return Err(ConfigError::Invalid {
                name: "MAX_REQUEST_BYTES",
                reason: format!(
                    "at most {MAX_REQUEST_BYTES_LIMIT}: the job record (400 KB in DynamoDB) holds the input"
                ),
            });
        }
        if config.heartbeat_seconds == 0 || config.heartbeat_seconds * 2 > config.lease_seconds {
            return Err(ConfigError::Invalid {
                name: "HEARTBEAT_SECONDS",
                reason: format!("must be between 1 and half of LEASE_SECONDS ({})", config.lease_seconds),
            });
        }
        if !(1..=3600).contains(&config.upload_url_ttl.as_secs()) {
            return Err(ConfigError::Invalid {
                name: "UPLOAD_URL_TTL_SECONDS",
                reason: "must be between 1 and 3600: an upload URL is for the upload that follows".into(),
            });
        }
        if config.batch_concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "BATCH_CONCURRENCY",
                reason: "must be at least 1".into(),
            });
        }
        if config.max_stalled_runs == 0 {
            return Err(ConfigError::Invalid {
                name: "MAX_STALLED_RUNS",
                reason: "must be at least 1".into(),
            });
        }
        if config.max_upload_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: "MAX_UPLOAD_BYTES",
                reason: "must be at least 1".into(),
            });
        }
        if !(1..=MAX_RESULT_URL_TTL_SECONDS).contains(&config.result_url_ttl.as_secs()) {
            return Err(ConfigError::Invalid {
                name: "RESULT_URL_TTL_SECONDS",
                reason: format!(
                    "must be between 1 and {MAX_RESULT_URL_TTL_SECONDS} (7 days, the longest an S3 presigned URL lives)"
                ),
            });
        }
        if !(1..=config.max_job_timeout_seconds).contains(&config.default_job_timeout_seconds) {
            return Err(ConfigError::Invalid {
                name: "DEFAULT_JOB_TIMEOUT_SECONDS",
                reason: format!(
                    "must be between 1 and MAX_JOB_TIMEOUT_SECONDS ({})",
                    config.max_job_timeout_seconds
                ),
            });
        }
        Ok(config)
    }

    /// How many webhook delivery tries there are: one more than the waits
    /// between them.
    pub fn webhook_max_attempts(&self) -> u32 {
        self.webhook_retry_schedule.len() as u32 + 1
    }

    /// Seconds a running job's message is hidden for at each heartbeat: a
    /// little longer than the lease, so that when a dead worker's message
    /// comes back its lease has certainly expired.
    pub fn heartbeat_visibility_seconds(&self) -> u32 {
        self.lease_seconds + 5
    }

    /// `ENQUEUE_GRACE_SECONDS` in milliseconds, the unit of the record's times.
    pub fn enqueue_grace_ms(&self) -> i64 {
        self.enqueue_grace_seconds * 1000
    }

    /// The queue a job of `job_type` goes to when the request names none.
    pub fn queue_for(&self, job_type: &str) -> &str {
        self.job_queues.get(job_type).unwrap_or(&self.default_queue)
    }

    /// The queue a job of `job_type` at `priority` waits in: the priority's
    /// own queue (`PRIORITY_QUEUES`), else the type's ([`queue_for`](Self::queue_for)).
    pub fn queue_for_priority(&self, job_type: &str, priority: Priority) -> &str {
        self.priority_queues
            .get(&priority)
            .map(String::as_str)
            .unwrap_or_else(|| self.queue_for(job_type))
    }

    /// The logical name of the queue behind an SQS ARN or URL (its last segment
    /// matches the last segment of one of `QUEUE_URLS`).
    pub fn queue_name_for_source(&self, arn_or_url: &str) -> Option<&str> {
        let tail = arn_or_url.rsplit([':', '/']).next()?;
        self.queue_urls
            .iter()
            .find(|(_, url)| url.rsplit('/').next() == Some(tail))
            .map(|(name, _)| name.as_str())
    }
}

fn parse_pairs(name: &'static str, raw: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("{part:?} is not key=value"),
            })?;
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: at most 20 waits of 1 s to 12 h.
fn retry_schedule(raw: Option<String>) -> Result<Vec<u32>, ConfigError> {
    let raw = raw.unwrap_or_else(|| "5,300,1800,7200,18000,36000,36000".to_owned());
    let invalid = || ConfigError::Invalid {
        name: "WEBHOOK_RETRY_SCHEDULE_SECONDS",
        reason: format!("{raw:?}: give up to 20 comma-separated waits, each 1 to 43200 seconds"),
    };
    let waits = raw
        .split(',')
        .filter(|w| !w.trim().is_empty())
        .map(|w| w.trim().parse::<u32>().ok().filter(|w| (1..=43_200).contains(w)))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(invalid)?;
    if waits.len() > 20 {
        return Err(invalid());
    }
    Ok(waits)
}

fn flag(lookup: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match lookup(name).as_deref().map(str::trim) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("{other:?} is not true/false"),
        }),
    }
}

#[cfg(test)]
mod tests;
