//! `longrun-admin`: operator commands against a stack, deployed on AWS or
//! run by the local runtime. It is its own crate so that it builds and
//! installs without the local runtime (`cargo install --path infra/admin`).
//! `longrun-admin --help` lists the commands and options ([`HELP`]).
//!
//! `queues`, `dlq` and `jobs` only read (`dlq` receives from the
//! dead-letter queues, deletes nothing and makes what it read visible again
//! at once); `--json` gives them a stable shape for scripts.
//!
//! `usage` prints each owner's quota usage: how many of its
//! `MAX_ACTIVE_JOBS_PER_OWNER` slots its active jobs hold, and which jobs.
//!
//! `requeue` redrives dead-lettered jobs: each DEAD_LETTERED job goes back
//! to QUEUED as a fresh run in a new generation and its id is sent to its
//! queue again. This is the redrive for both AWS and the emulator: SQS's own
//! StartMessageMoveTask would only move messages, and a worker drops a
//! message whose job is DEAD_LETTERED (moto does not implement it anyway).
//!
//! The stack comes from the same environment variables as the functions
//! (`JOBS_TABLE`, `JOBS_BUCKET`, `QUEUE_URLS`, …, and the AWS SDK's), from
//! a running local runtime (`--local URL`), or from a deployed stack's
//! CloudFormation outputs (`--stack NAME` through the `aws` CLI, or
//! `--stack-outputs FILE`).

mod args;
mod dlq;
mod format;
mod jobs;
mod queues;
mod schedules;
mod stack;
mod ui;

use std::process::ExitCode;

use longrun_aws::{AwsClients, DynamoJobStore};
use longrun_core::ports::{JobMessage, JobQueue, JobStore, Transition};
use longrun_core::time::now_ms;
use longrun_core::{Config, JobId, JobStatus};

#[cfg(test)]
use crate::args::Cli;
use crate::args::{parse_args, Command, HELP};
#[cfg(test)]
use crate::stack::Source;

/// Prints a usage problem with a pointer to `--help`; exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("longrun-admin: {message}\n(longrun-admin --help lists the commands)");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match parse_args(std::env::args().skip(1).collect()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match cli.command {
        Command::Help => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Command::Requeue(ids) => {
            longrun_core::telemetry::init();
            match stack::config(&cli.source).await {
                Ok(config) => requeue(&config, &ids).await,
                Err(e) => usage_error(&e),
            }
        }
        Command::PauseSchedules(ids, pause) => {
            longrun_core::telemetry::init();
            match stack::config(&cli.source).await {
                Ok(config) => schedules::pause(&config, &ids, pause).await,
                Err(e) => usage_error(&e),
            }
        }
        Command::Usage(owners) => {
            longrun_core::telemetry::init();
            match stack::config(&cli.source).await {
                Ok(config) => {
                    let clients = AwsClients::load().await;
                    usage(clients.job_store(&config).as_ref(), &config, &owners).await
                }
                Err(e) => usage_error(&e),
            }
        }
        command => {
            // No log subscriber here: stdout is only the report (JSON with
            // --json); what fails is reported on stderr by the command itself.
            let stack = match stack::load(&cli.source).await {
                Ok(stack) => stack,
                Err(e) => return usage_error(&e),
            };
            let clients = AwsClients::load().await;
            match command {
                Command::Ui { port } => ui::serve(stack, clients, port).await,
                Command::Queues { sample } => queues_command(&clients, &stack, sample, cli.json).await,
                Command::Dlq { queue, limit } => dlq_command(&clients, &stack, queue.as_deref(), limit, cli.json).await,
                Command::Jobs { status, owner, limit } => {
                    jobs_command(&clients, &stack, status, owner.as_deref(), limit, cli.json).await
                }
                Command::Schedules { owner, limit } => {
                    match schedules::read(&clients.dynamodb, &stack.config.jobs_table, owner.as_deref(), limit).await {
                        Ok(found) => {
                            print!("{}", schedules::render(&found, cli.json));
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            eprintln!("longrun-admin: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                _ => unreachable!("handled above"),
            }
        }
    }
}

async fn queues_command(clients: &AwsClients, stack: &stack::Stack, sample: usize, json: bool) -> ExitCode {
    let states = queues::survey(&clients.sqs, &stack.queues).await;
    let (oldest, age_error) = match queues::sample_due(&clients.dynamodb, &stack.config.jobs_table, sample).await {
        Ok(sampled) => (queues::oldest_per_queue(&sampled, now_ms()), None),
        Err(e) => (Default::default(), Some(e)),
    };
    print!(
        "{}",
        queues::render(
            &states,
            &oldest,
            age_error.as_deref(),
            &stack.source,
            sample,
            now_ms(),
            json
        )
    );
    if json {
        println!();
    }
    if age_error.is_some() || states.iter().any(|s| s.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn dlq_command(
    clients: &AwsClients,
    stack: &stack::Stack,
    wanted: Option<&str>,
    limit: usize,
    json: bool,
) -> ExitCode {
    let states = queues::survey(&clients.sqs, &stack.queues).await;
    let dead_letter_queues: Vec<&queues::QueueState> =
        states.iter().filter(|s| s.kind == queues::Kind::DeadLetter).collect();
    let chosen: Vec<&queues::QueueState> = match wanted {
        None => dead_letter_queues.clone(),
        Some(wanted) => {
            let direct: Vec<_> = dead_letter_queues
                .iter()
                .copied()
                .filter(|s| s.queue.is_named(wanted))
                .collect();
            if direct.is_empty() {
                // A queue whose dead letters it catches.
                let via: Vec<&str> = states
                    .iter()
                    .filter(|s| s.queue.is_named(wanted))
                    .filter_map(|s| s.dead_letter_queue(&states))
                    .collect();
                dead_letter_queues
                    .iter()
                    .copied()
                    .filter(|s| via.contains(&s.queue.label()))
                    .collect()
            } else {
                direct
            }
        }
    };
    if chosen.is_empty() {
        let names: Vec<&str> = dead_letter_queues.iter().map(|s| s.queue.label()).collect();
        return usage_error(&format!(
            "no dead-letter queue {:?}; the stack's: {}",
            wanted.unwrap_or_default(),
            names.join(", ")
        ));
    }
    let store = DynamoJobStore::new(clients.dynamodb.clone(), &stack.config.jobs_table, 0);
    let mut reports = Vec::new();
    let mut failed = false;
    for state in chosen {
        let sources: Vec<&str> = states
            .iter()
            .filter(|s| s.dead_letter_queue(&states) == Some(state.queue.label()))
            .map(|s| s.queue.label())
            .collect();
        let (mut entries, mut warnings) = (Vec::new(), Vec::new());
        // Polled even when SQS counts it empty: its counts lag behind.
        if state.error.is_none() {
            let (received, problems) = dlq::peek(&clients.sqs, &state.queue.url, limit).await;
            for message in received {
                entries.push(dlq::entry(&store, message, now_ms()).await);
            }
            warnings = problems;
        }
        failed |= state.error.is_some() || !warnings.is_empty();
        reports.push(dlq::QueueReport {
            state,
            sources,
            entries,
            warnings,
        });
    }
    print!("{}", dlq::render(&reports, &stack.source, limit, now_ms(), json));
    if json {
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn jobs_command(
    clients: &AwsClients,
    stack: &stack::Stack,
    status: Option<JobStatus>,
    owner: Option<&str>,
    limit: usize,
    json: bool,
) -> ExitCode {
    let table = &stack.config.jobs_table;
    match jobs::tally(
        &clients.dynamodb,
        table,
        &jobs::Filter {
            owner,
            status,
            job_type: None,
        },
        limit,
        None,
        None,
    )
    .await
    {
        Ok(tally) => {
            print!("{}", jobs::render(&tally, &stack.source, owner, table, now_ms(), json));
            if json {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Redrives each dead-lettered job; fails if any could not be.
async fn requeue(config: &Config, ids: &[String]) -> ExitCode {
    let clients = AwsClients::load().await;
    let (store, queue) = (clients.job_store(config), clients.job_queue(config));
    let mut failed = false;
    for raw in ids {
        match redrive(store.as_ref(), queue.as_ref(), config, raw).await {
            Ok(line) => println!("{raw}: {line}"),
            Err(e) => {
                eprintln!("{raw}: {e}");
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

/// Why a redrive did nothing.
#[derive(Debug)]
pub(crate) enum NotRedriven {
    NotAnId,
    NoSuchJob,
    NotDeadLettered(JobStatus),
    Store(String),
}

impl std::fmt::Display for NotRedriven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRedriven::NotAnId => write!(f, "not a job id"),
            NotRedriven::NoSuchJob => write!(f, "no such job"),
            NotRedriven::NotDeadLettered(status) => write!(f, "not dead-lettered (it is {status})"),
            NotRedriven::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Redrives dead-lettered job `raw`: back to QUEUED as a fresh run in a new
/// generation, and sent to its queue (the reconciler sends it if that send
/// fails). What happened, or why not.
pub(crate) async fn redrive(
    store: &dyn JobStore,
    queue: &dyn JobQueue,
    config: &Config,
    raw: &str,
) -> Result<String, NotRedriven> {
    let id = JobId::parse(raw).ok_or(NotRedriven::NotAnId)?;
    let now = now_ms();
    let due_at = now + config.enqueue_grace_ms();
    match store.requeue_dead_lettered(&id, now, due_at).await {
        Ok(Transition::Done(job)) => {
            let message = JobMessage::for_job(&job, now);
            Ok(match queue.enqueue(&job.queue, &message, 0).await {
                Ok(()) => format!("requeued on {}", job.queue),
                // Still queued and due: the reconciler sends it after the grace period.
                Err(e) => format!("requeued; send failed ({e}), the reconciler will send it"),
            })
        }
        Ok(Transition::Refused(job)) => Err(NotRedriven::NotDeadLettered(job.status)),
        Ok(Transition::NotFound) => Err(NotRedriven::NoSuchJob),
        Err(e) => Err(NotRedriven::Store(e.to_string())),
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

#[cfg(test)]
mod tests;
