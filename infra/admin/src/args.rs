//! The command line: the help text, the commands and their parsing.

use longrun_core::JobStatus;

use crate::stack::Source;

pub(crate) const HELP: &str = "\
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
  schedules [--owner O] [--limit N]
      Recurring schedules, N (20) at most: id, owner, cron or rate, paused,
      next tick, last tick and what it did. A Scan of the table's schedule
      items, or with --owner a Query of the owner's schedules.
  ui [--port P]
      The dashboard, on http://127.0.0.1:P/ (8700), loopback only: queues
      with depths and the oldest ready job's age, dead letters with redrive,
      jobs by status and owner, search by id, a job page with live progress,
      results and cancel. Actions say what they do before doing it.
  pause-schedule SCHEDULE_ID...  /  resume-schedule SCHEDULE_ID...
      Pauses (no ticks; a tick's job made ahead and still waiting is
      cancelled) or resumes (from now, no backfill) schedules, as their
      owners' PATCH would.

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
pub(crate) enum Command {
    Help,
    Requeue(Vec<String>),
    Usage(Vec<String>),
    Schedules {
        owner: Option<String>,
        limit: usize,
    },
    PauseSchedules(Vec<String>, bool),
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
    Ui {
        port: u16,
    },
}

/// The command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cli {
    pub(crate) source: Source,
    pub(crate) json: bool,
    pub(crate) command: Command,
}

fn number(flag: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or(format!("{flag} needs a value"))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} {value}: expected a whole number above 0")),
    }
}

/// Parses the arguments (without the program name).
pub(crate) fn parse_args(args: Vec<String>) -> Result<Cli, String> {
    let mut source = None;
    let mut json = false;
    let mut command: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    let (mut sample, mut limit, mut status, mut owner, mut port) = (None, None, None, None, None);
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
        if matches!(
            command.as_deref(),
            Some("requeue" | "usage" | "pause-schedule" | "resume-schedule")
        ) {
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
            "--port" => port = Some(number("--port", args.next())?),
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
            ("--port", port.is_some()),
        ];
        match given.iter().find(|(flag, set)| *set && !allowed.contains(flag)) {
            Some((flag, _)) => Err(format!("{command} takes no {flag}")),
            None => Ok(()),
        }
    };
    let command = match command.as_str() {
        "requeue" | "usage" | "pause-schedule" | "resume-schedule" if rest.is_empty() => {
            return Err(format!("{command} needs at least one argument"))
        }
        "pause-schedule" => Command::PauseSchedules(rest, true),
        "resume-schedule" => Command::PauseSchedules(rest, false),
        "schedules" if rest.is_empty() => {
            only(&["--owner", "--limit"])?;
            Command::Schedules {
                owner,
                limit: limit.unwrap_or(20),
            }
        }
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
        "ui" if rest.is_empty() => {
            only(&["--port"])?;
            Command::Ui {
                port: u16::try_from(port.unwrap_or(8700)).map_err(|_| "--port: at most 65535")?,
            }
        }
        "queues" | "dlq" | "jobs" | "schedules" | "ui" => {
            return Err(format!("{command}: unexpected argument {:?}", rest.last().unwrap()))
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Cli {
        source: source.unwrap_or(Source::Env),
        json,
        command,
    })
}
