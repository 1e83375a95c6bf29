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

mod dlq;
mod format;
mod jobs;
mod queues;
mod stack;

use longrun_core::ports::JobLifecycle;
use std::process::ExitCode;

use longrun_aws::{AwsClients, DynamoJobStore};
use longrun_core::ports::{JobMessage, JobQueue, JobStore, Transition};
use longrun_core::time::now_ms;
use longrun_core::{Config, JobId, JobStatus};

use crate::stack::Source;

/// `--help`.
const HELP: &str = "\
longrun-admin: operator commands against a longrun stack (AWS or a local runtime)

usage: longrun-admin [STACK] COMMAND [ARGS] [--json]

commands:
  queues [--sample N]
      Every queue of the stack (work queues, webhook queue, every dead-letter
      queue): visible, delayed and in-flight messages (SQS's approximate
      counts, one GetQueueAttributes each), and for each work queue the age of
      its oldest QUEUED job ready to run. That age comes from the jobs table,
      not SQS (no message is ever received from a work queue): the N (20)
      earliest-due entries of each of the 16 shards of the `due` index are
      read back and the oldest QUEUED job per queue among them gives now minus
      when it became ready (run_at, else when it was queued or redriven).
  dlq [QUEUE] [--limit N]
      What the dead-letter queues hold (QUEUE: one of them, or a queue whose
      dead letters it catches; by logical id, QUEUE_URLS name or SQS name),
      at most N (20) messages each: job id, sent time, receive count, and the
      job's status and last error from the table (the raw body for poison).
      Nothing is deleted: messages are received with a 30 s hold, so that one
      listing pages through them, and made visible again at once after
      (ChangeMessageVisibility 0); the receive counts include this read.
  jobs [--status S] [--owner O] [--limit N]
      How many jobs are in each status: a Scan of the whole table (job items
      only), or with --owner a Query of the by-owner index. With --status
      (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, DEAD_LETTERED) also the
      newest N (20) jobs in it by updated_at: id, owner, type, queue, status,
      updated_at.
  usage OWNER...
      Each owner's quota usage: how many of its MAX_ACTIVE_JOBS_PER_OWNER
      slots its active jobs hold, and which jobs.
  requeue JOB_ID...
      Redrive: each DEAD_LETTERED job goes back to QUEUED as a fresh run in a
      new generation and is sent to its queue again.

stack (one; before or after the command):
  (none)                 the functions' environment: JOBS_TABLE, JOBS_BUCKET,
                         QUEUE_URLS, … (dead-letter queues are found through
                         the queues' redrive policies)
  --local URL            a running local runtime, e.g. http://127.0.0.1:3000
  --stack NAME           a deployed stack's CloudFormation outputs, read with
                         `aws cloudformation describe-stacks` (the aws CLI)
  --stack-outputs FILE   the same outputs saved as JSON (`-`: standard input),
                         from describe-stacks or `sam list stack-outputs
                         --output json`
  AWS credentials, region and endpoint come from the SDK's usual sources
  (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for an emulator, …).

options:
  --json                 queues, dlq, jobs: JSON with stable keys, for scripts
  -h, --help             this text

exit status: 0 done, 1 something could not be read or changed, 2 bad usage
or no stack.";

/// A command and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    Help,
    Requeue(Vec<String>),
    Usage(Vec<String>),
    Queues {
        sample: usize,
    },
    Dlq {
        queue: Option<String>,
        limit: usize,
    },
    Jobs {
        status: Option<JobStatus>,
        owner: Option<String>,
        limit: usize,
    },
}

/// The command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cli {
    source: Source,
    json: bool,
    command: Command,
}

fn number(flag: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or(format!("{flag} needs a value"))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} {value}: expected a whole number above 0")),
    }
}

/// Parses the arguments (without the program name).
fn parse_args(args: Vec<String>) -> Result<Cli, String> {
    let mut source = None;
    let mut json = false;
    let mut command: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    let (mut sample, mut limit, mut status, mut owner) = (None, None, None, None);
    let mut args = args.into_iter();
    let set_source = |source: &mut Option<Source>, new: Source| match source {
        Some(_) => Err("name the stack once: --local, --stack or --stack-outputs".to_owned()),
        None => {
            *source = Some(new);
            Ok(())
        }
    };
    while let Some(arg) = args.next() {
        // requeue and usage take every argument after them as given, as they always have.
        if matches!(command.as_deref(), Some("requeue" | "usage")) {
            rest.push(arg);
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => {
                return Ok(Cli {
                    source: Source::Env,
                    json,
                    command: Command::Help,
                })
            }
            "--json" => json = true,
            "--local" => set_source(&mut source, Source::Local(args.next().ok_or("--local needs a URL")?))?,
            "--stack" => set_source(
                &mut source,
                Source::CloudFormation(args.next().ok_or("--stack needs a name")?),
            )?,
            "--stack-outputs" => set_source(
                &mut source,
                Source::Outputs(args.next().ok_or("--stack-outputs needs a file (or -)")?),
            )?,
            "--sample" => sample = Some(number("--sample", args.next())?),
            "--limit" => limit = Some(number("--limit", args.next())?),
            "--status" => {
                let raw = args.next().ok_or("--status needs a status")?;
                let parsed = JobStatus::parse(&raw.to_ascii_uppercase()).ok_or_else(|| {
                    let all: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                    format!("--status {raw}: one of {}", all.join(", "))
                })?;
                status = Some(parsed);
            }
            "--owner" => owner = Some(args.next().ok_or("--owner needs an owner")?),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            word if command.is_none() => command = Some(word.to_owned()),
            word => rest.push(word.to_owned()),
        }
    }
    let command = command.ok_or("no command")?;
    let only = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("--sample", sample.is_some()),
            ("--limit", limit.is_some()),
            ("--status", status.is_some()),
            ("--owner", owner.is_some()),
        ];
        match given.iter().find(|(flag, set)| *set && !allowed.contains(flag)) {
            Some((flag, _)) => Err(format!("{command} takes no {flag}")),
            None => Ok(()),
        }
    };
    let command = match command.as_str() {
        "requeue" | "usage" if rest.is_empty() => return Err(format!("{command} needs at least one argument")),
        "requeue" => Command::Requeue(rest),
        "usage" => Command::Usage(rest),
        "queues" if rest.is_empty() => {
            only(&["--sample"])?;
            Command::Queues {
                sample: sample.unwrap_or(20),
            }
        }
        "dlq" if rest.len() <= 1 => {
            only(&["--limit"])?;
            Command::Dlq {
                queue: rest.pop(),
                limit: limit.unwrap_or(20),
            }
        }
        "jobs" if rest.is_empty() => {
            only(&["--status", "--owner", "--limit"])?;
            Command::Jobs {
                status,
                owner,
                limit: limit.unwrap_or(20),
            }
        }
        "queues" | "dlq" | "jobs" => return Err(format!("{command}: unexpected argument {:?}", rest.last().unwrap())),
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Cli {
        source: source.unwrap_or(Source::Env),
        json,
        command,
    })
}

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
                Command::Queues { sample } => queues_command(&clients, &stack, sample, cli.json).await,
                Command::Dlq { queue, limit } => dlq_command(&clients, &stack, queue.as_deref(), limit, cli.json).await,
                Command::Jobs { status, owner, limit } => {
                    jobs_command(&clients, &stack, status, owner.as_deref(), limit, cli.json).await
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
    match jobs::tally(&clients.dynamodb, table, owner, status, limit).await {
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
    let store = clients.job_store(config);
    let queue = clients.job_queue(config);
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

#[cfg(test)]
mod tests;
