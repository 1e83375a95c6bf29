//! `longrun-admin`: operator commands against a stack, deployed on AWS or
//! run by the local runtime. It is its own crate so that it builds and
//! installs without the local runtime (`cargo install --path infra/admin`).
//!
//! ```text
//! longrun-admin [--local http://127.0.0.1:3000] requeue JOB_ID...
//! longrun-admin [--local http://127.0.0.1:3000] usage OWNER...
//! ```
//!
//! `usage` prints each owner's quota usage: how many of its
//! `MAX_ACTIVE_JOBS_PER_OWNER` slots its active jobs hold, and which jobs.
//!
//! `requeue` redrives dead-lettered jobs: each DEAD_LETTERED job goes back
//! to QUEUED as a fresh run in a new generation and its id is sent to its
//! queue again. This is the redrive for both AWS and the emulator: SQS's own
//! StartMessageMoveTask would only move messages, and a worker drops a
//! message whose job is DEAD_LETTERED (moto does not implement it anyway).
//! Configuration comes from the same environment variables as the functions
//! (`JOBS_TABLE`, `JOBS_BUCKET`, `QUEUE_URLS`, …, and the AWS SDK's), or,
//! with `--local`, from a running local runtime.

use std::collections::BTreeMap;
use std::process::ExitCode;

use longrun::aws::AwsClients;
use longrun::ports::{JobMessage, JobQueue, JobStore, Transition};
use longrun::time::now_ms;
use longrun::{Config, JobId};

const USAGE: &str =
    "usage: longrun-admin [--local URL] requeue JOB_ID...\n       longrun-admin [--local URL] usage OWNER...";

async fn config(local: Option<&str>) -> Result<Config, String> {
    let Some(url) = local else {
        return Config::from_env().map_err(|e| e.to_string());
    };
    let environment: BTreeMap<String, String> = reqwest::get(format!(
        "{}/_local/environment/ReconcilerFunction",
        url.trim_end_matches('/')
    ))
    .await
    .and_then(reqwest::Response::error_for_status)
    .map_err(|e| format!("cannot read the local runtime's configuration: {e}"))?
    .json()
    .await
    .map_err(|e| e.to_string())?;
    Config::from_lookup(|name| environment.get(name).cloned()).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    longrun::telemetry::init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut local = None;
    if args.first().map(String::as_str) == Some("--local") && args.len() > 1 {
        local = Some(args.remove(1));
        args.remove(0);
    }
    let (Some(command @ ("requeue" | "usage")), ids) =
        (args.first().map(String::as_str), args.get(1..).unwrap_or_default())
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if ids.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let config = match config(local.as_deref()).await {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let clients = AwsClients::load().await;
    let store = clients.job_store(&config);
    if command == "usage" {
        return usage(store.as_ref(), &config, ids).await;
    }
    let queue = clients.job_queue(&config);
    let mut failed = false;
    for raw in ids {
        let Some(id) = JobId::parse(raw) else {
            eprintln!("{raw}: not a job id");
            failed = true;
            continue;
        };
        let now = now_ms();
        let due_at = now + config.enqueue_grace_ms();
        match store.requeue_dead_lettered(&id, now, due_at).await {
            Ok(Transition::Done(job)) => {
                let message = JobMessage::for_job(&job, now);
                match queue.enqueue(&job.queue, &message, 0).await {
                    Ok(()) => println!("{id}: requeued on {}", job.queue),
                    // Still queued and due: the reconciler sends it after the grace period.
                    Err(e) => println!("{id}: requeued; send failed ({e}), the reconciler will send it"),
                }
            }
            Ok(Transition::Refused(job)) => {
                eprintln!("{id}: not dead-lettered (it is {})", job.status);
                failed = true;
            }
            Ok(Transition::NotFound) => {
                eprintln!("{id}: no such job");
                failed = true;
            }
            Err(e) => {
                eprintln!("{id}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints each owner's quota usage; fails if a read fails.
async fn usage(store: &dyn JobStore, config: &Config, owners: &[String]) -> ExitCode {
    let limit = match config.max_active_jobs_per_owner {
        0 => "no limit".to_owned(),
        n => n.to_string(),
    };
    let mut failed = false;
    for owner in owners {
        match store.active_slots(owner).await {
            Ok(active) => {
                println!("{owner}: {} active of {limit}", active.len());
                for id in active {
                    println!("  {id}");
                }
            }
            Err(e) => {
                eprintln!("{owner}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
