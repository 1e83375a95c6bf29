//! `longrun schedule create|list|get|pause|resume|delete`: recurring
//! schedules from a shell.

use clap::Subcommand;
use longrun_client::schedule::{Overlap, ScheduleRequest, ScheduleView};
use longrun_client::{Client, ClientError};
use serde_json::{json, Value};

/// What `longrun schedule` does.
#[derive(Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule whose every tick submits one job.
    Create {
        /// The job type each tick submits.
        #[arg(long = "type")]
        job_type: String,
        /// The job's input, as JSON.
        #[arg(long, default_value = "{}")]
        input_json: String,
        /// Five-field cron (`minute hour day-of-month month day-of-week`), read in `--timezone`.
        #[arg(long, conflicts_with = "rate", required_unless_present = "rate")]
        cron: Option<String>,
        /// A fixed interval such as `15 minutes`.
        #[arg(long)]
        rate: Option<String>,
        /// The IANA time zone the cron is read in (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// `skip` (default): no job while the last one runs; `allow`: one anyway.
        #[arg(long, value_parser = ["skip", "allow"])]
        overlap: Option<String>,
        /// No tick before this time (RFC 3339).
        #[arg(long)]
        start_at: Option<String>,
        /// No tick after this time (RFC 3339).
        #[arg(long)]
        end_at: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// List your schedules, oldest first.
    List {
        /// Most on the page.
        #[arg(long)]
        limit: Option<u32>,
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a schedule, its next fire times and its recent runs.
    Get { id: String },
    /// Pause a schedule: no ticks until resumed.
    Pause { id: String },
    /// Resume a schedule from now (missed ticks are not made up).
    Resume { id: String },
    /// Delete a schedule (the jobs it made stay).
    Delete { id: String },
}

fn bad(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::File {
        path: what.into(),
        message: e.to_string(),
    }
}

/// Runs the command; prints the schedule (or page) as text, or JSON with `json`.
pub(crate) async fn run(command: &ScheduleCommand, client: &Client, json_out: bool) -> Result<(), ClientError> {
    match command {
        ScheduleCommand::Create {
            job_type,
            input_json,
            cron,
            rate,
            timezone,
            name,
            overlap,
            start_at,
            end_at,
            paused,
        } => {
            let input: Value = serde_json::from_str(input_json).map_err(|e| bad("--input-json", e))?;
            let body = json!({
                "name": name, "cron": cron, "rate": rate, "timezone": timezone,
                "job": {"type": job_type, "input": input},
                "overlap": overlap.as_deref().map(|o| if o == "allow" { Overlap::Allow } else { Overlap::Skip }),
                "start_at": start_at, "end_at": end_at, "paused": paused.then_some(true),
            });
            let body = strip_nulls(body);
            let request: ScheduleRequest = serde_json::from_value(body).map_err(|e| bad("the schedule", e))?;
            show(&client.create_schedule(&request).await?, json_out);
        }
        ScheduleCommand::List { limit, cursor } => {
            let page = client.list_schedules(*limit, cursor.as_deref()).await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&page).unwrap_or_default());
            } else {
                for s in &page.schedules {
                    let when = s.cron.as_deref().or(s.rate.as_deref()).unwrap_or("");
                    let next = s.next_fire_times.first().map_or("paused or ended", String::as_str);
                    println!("{}  {:<20} {}  next {}", s.id, when, s.job.job_type, next);
                }
                if let Some(cursor) = &page.next_cursor {
                    println!("more: --cursor {cursor}");
                }
            }
        }
        ScheduleCommand::Get { id } => show(&client.get_schedule(id).await?, json_out),
        ScheduleCommand::Pause { id } => show(&client.pause_schedule(id).await?, json_out),
        ScheduleCommand::Resume { id } => show(&client.resume_schedule(id).await?, json_out),
        ScheduleCommand::Delete { id } => {
            client.delete_schedule(id).await?;
            if !json_out {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

fn strip_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn show(view: &ScheduleView, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(view).unwrap_or_default());
        return;
    }
    let when = match (&view.cron, &view.rate) {
        (Some(cron), _) => format!("cron {cron:?} in {}", view.timezone),
        (None, Some(rate)) => format!("every {rate}"),
        _ => String::new(),
    };
    let state = if view.paused { "paused" } else { "active" };
    println!(
        "{}  {}  {}  {}  overlap {}",
        view.id,
        view.job.job_type,
        when,
        state,
        view.overlap.as_str()
    );
    for at in &view.next_fire_times {
        println!("  next {at}");
    }
    for run in &view.recent_runs {
        let job = run.job_id.as_deref().unwrap_or("-");
        let status = run.status.as_deref().or(run.detail.as_deref()).unwrap_or("");
        println!("  ran  {}  {:<9} {job}  {status}", run.tick_at, run.outcome);
    }
}
