//! `longrun`: the job API from a shell, built on `longrun-client`.
//!
//! ```text
//! longrun submit report --input sales.csv --group-by region --values amount --wait --out results/
//! longrun get|wait|cancel|results <id>
//! longrun list [--status SUCCEEDED] [--limit 20] [--cursor …]
//! longrun schedule create --type report --input-json '{…}' --cron "30 2 * * *" --timezone Europe/Berlin
//! longrun schedule list|get|pause|resume|delete [<id>]
//! ```
//!
//! The API URL and token come from `--api`/`--token` or `LONGRUN_API_URL` /
//! `LONGRUN_TOKEN` (default `http://127.0.0.1:3000`, what `make dev` serves;
//! locally the token is the caller's name). `--json` prints the API's JSON
//! for scripts. The exit code says how it went: see [`Exit`].

mod schedule;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use longrun_client::api::{JobView, SubmitRequest};
use longrun_client::{Client, ClientError};
use serde_json::{json, Value};

/// Exit codes, one per outcome.
#[derive(Clone, Copy, Debug)]
enum Exit {
    /// The command did what it was asked (a waited job SUCCEEDED).
    Ok = 0,
    /// A waited job ended FAILED.
    Failed = 3,
    /// A waited job ended CANCELLED.
    Cancelled = 4,
    /// A waited job ended DEAD_LETTERED.
    DeadLettered = 5,
    /// The API refused the request (its problem is printed).
    Refused = 6,
    /// The API could not be reached, or answered off contract.
    Connection = 7,
    /// A local file could not be read or written.
    File = 8,
    /// `results` of a job that has not ended yet.
    NotEnded = 9,
}
// Usage errors exit 2 (clap's own).

#[derive(Parser, Debug)]
#[command(name = "longrun", version, about = "Submit, watch and fetch jobs of a longrun stack")]
struct Cli {
    /// The API's base URL (a stack's ApiUrl output; `make dev` serves http://127.0.0.1:3000).
    #[arg(
        long,
        env = "LONGRUN_API_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    api: String,
    /// Bearer token: a JWT from the stack's issuer; locally, the caller's name.
    #[arg(
        long,
        env = "LONGRUN_TOKEN",
        default_value = "",
        hide_env_values = true,
        global = true
    )]
    token: String,
    /// Print the API's JSON (job views, lists) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: a large Submit variant costs nothing worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Submit a job (uploading --input first), optionally waiting for it.
    Submit {
        /// The job type: report, thumbnail, …
        job_type: String,
        /// A local file to upload as the job's `source`.
        #[arg(long)]
        input: Option<PathBuf>,
        /// report: the columns to group by (comma-separated).
        #[arg(long, value_delimiter = ',')]
        group_by: Vec<String>,
        /// report: the numeric columns to summarise (comma-separated).
        #[arg(long, value_delimiter = ',')]
        values: Vec<String>,
        /// thumbnail: the widths to make (comma-separated).
        #[arg(long, value_delimiter = ',')]
        widths: Vec<u32>,
        /// The whole input as JSON (merged under the flags above).
        #[arg(long)]
        input_json: Option<String>,
        /// high, normal or low.
        #[arg(long)]
        priority: Option<String>,
        /// Where to POST the job's end (needs POST /webhook-secret first).
        #[arg(long)]
        callback_url: Option<String>,
        /// One of the deployment's limits to run the job under (its template's
        /// `Limits`), for a job type that names none itself.
        #[arg(long)]
        limit: Option<String>,
        /// Makes a retried submit reach the same job (one is made otherwise).
        /// Not with --input: every upload gets a new key, so the request
        /// would differ; upload once and pass the key in --input-json.
        #[arg(long, conflicts_with = "input")]
        idempotency_key: Option<String>,
        /// Wait for the job to end, showing its progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: download the results into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show a job.
    Get { id: String },
    /// Wait for a job to end, showing its progress.
    Wait {
        id: String,
        /// Download the results into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List your jobs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Cancel a job (a chain's live step, for a chain).
    Cancel { id: String },
    /// Recurring schedules: each tick submits one job.
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Download a SUCCEEDED job's results.
    Results {
        id: String,
        /// The folder to write them to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match Client::new(&cli.api, &cli.token) {
        Ok(client) => client,
        Err(err) => return fail(&err),
    };
    match run(&cli, &client).await {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(err) => fail(&err),
    }
}

fn fail(err: &ClientError) -> ExitCode {
    match err {
        ClientError::Problem(problem) => {
            eprintln!("error: {} ({}): {}", problem.title, problem.status, problem.detail);
            for field in &problem.errors {
                eprintln!("  {}: {}", field.field, field.message);
            }
            ExitCode::from(Exit::Refused as u8)
        }
        ClientError::File { .. } => {
            eprintln!("error: {err}");
            ExitCode::from(Exit::File as u8)
        }
        _ => {
            eprintln!("error: {err}");
            ExitCode::from(Exit::Connection as u8)
        }
    }
}

async fn run(cli: &Cli, client: &Client) -> Result<Exit, ClientError> {
    match &cli.command {
        Command::Submit {
            job_type,
            input,
            group_by,
            values,
            widths,
            input_json,
            priority,
            callback_url,
            limit,
            idempotency_key,
            wait,
            out,
        } => {
            let mut job_input: Value = match input_json {
                Some(raw) => serde_json::from_str(raw).map_err(|e| ClientError::File {
                    path: "--input-json".into(),
                    message: e.to_string(),
                })?,
                None => json!({}),
            };
            if let Some(path) = input {
                let key = client.upload_file(path).await?;
                job_input["source"] = json!({ "key": key });
            }
            if !group_by.is_empty() {
                job_input["group_by"] = json!(group_by);
            }
            if !values.is_empty() {
                job_input["values"] = json!(values);
            }
            if !widths.is_empty() {
                job_input["widths"] = json!(widths);
            }
            let mut body = json!({"type": job_type, "input": job_input});
            if let Some(priority) = priority {
                body["priority"] = json!(priority);
            }
            if let Some(url) = callback_url {
                body["callback_url"] = json!(url);
            }
            if let Some(limit) = limit {
                body["limit"] = json!(limit);
            }
            let request: SubmitRequest = serde_json::from_value(body).map_err(|e| ClientError::File {
                path: "the job".into(),
                message: e.to_string(),
            })?;
            let view = client.submit(&request, idempotency_key.as_deref()).await?;
            if !wait {
                show(cli, &view);
                return Ok(Exit::Ok);
            }
            if !cli.json {
                eprintln!("submitted {} ({})", view.id, view.job_type);
            }
            wait_and_fetch(cli, client, &view.id, out.as_deref()).await
        }
        Command::Get { id } => {
            show(cli, &client.get(id, 0).await?);
            Ok(Exit::Ok)
        }
        Command::Wait { id, out } => wait_and_fetch(cli, client, id, out.as_deref()).await,
        Command::List { status, limit, cursor } => {
            let page = client.list(status.as_deref(), *limit, cursor.as_deref()).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&page).unwrap_or_default());
            } else {
                for job in &page.jobs {
                    println!(
                        "{}  {:<13} {:>3}%  {}  {}",
                        job.id, job.status, job.progress, job.job_type, job.created_at
                    );
                }
                if let Some(cursor) = &page.next_cursor {
                    println!("more: --cursor {cursor}");
                }
            }
            Ok(Exit::Ok)
        }
        Command::Cancel { id } => {
            show(cli, &client.cancel(id).await?);
            Ok(Exit::Ok)
        }
        Command::Schedule { command } => {
            schedule::run(command, client, cli.json).await?;
            Ok(Exit::Ok)
        }
        Command::Results { id, out } => {
            let view = client.get(id, 0).await?;
            if view.status != "SUCCEEDED" {
                eprintln!("job {id} is {}: no results", view.status);
                return Ok(exit_for(&view.status));
            }
            let files = client.download_results(&view, out).await?;
            report_files(cli, &view, &files);
            Ok(Exit::Ok)
        }
    }
}

/// Waits with a progress bar (on stderr, only on a terminal), downloads the
/// results of a success into `out`, prints the view; the exit by outcome.
async fn wait_and_fetch(cli: &Cli, client: &Client, id: &str, out: Option<&Path>) -> Result<Exit, ClientError> {
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    if cli.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let view = client
        .wait(id, |view| {
            bar.set_position(u64::from(view.progress));
            bar.set_message(format!("{} {}", view.status, view.message.clone().unwrap_or_default()));
        })
        .await?;
    bar.finish_and_clear();
    let files = match (out, view.status.as_str()) {
        (Some(dir), "SUCCEEDED") => client.download_results(&view, dir).await?,
        _ => Vec::new(),
    };
    if out.is_some() && !files.is_empty() {
        report_files(cli, &view, &files);
    } else {
        show(cli, &view);
    }
    Ok(exit_for(&view.status))
}

fn exit_for(status: &str) -> Exit {
    match status {
        "FAILED" => Exit::Failed,
        "CANCELLED" => Exit::Cancelled,
        "DEAD_LETTERED" => Exit::DeadLettered,
        "QUEUED" | "RUNNING" => Exit::NotEnded,
        _ => Exit::Ok,
    }
}

fn show(cli: &Cli, view: &JobView) {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(view).unwrap_or_default());
        return;
    }
    println!("{}  {}  {}  {}%", view.id, view.job_type, view.status, view.progress);
    if let Some(message) = &view.message {
        println!("  {message}");
    }
    if let Some(error) = &view.error {
        println!("  error: {}: {}", error.code, error.message);
    }
    for result in &view.results {
        println!("  {} ({} bytes): {}", result.name, result.bytes, result.url);
    }
}

fn report_files(cli: &Cli, view: &JobView, files: &[PathBuf]) {
    if cli.json {
        let written: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut value = serde_json::to_value(view).unwrap_or_default();
        value["downloaded"] = json!(written);
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        println!("{}  {}  {}", view.id, view.job_type, view.status);
        for file in files {
            println!("  wrote {}", file.display());
        }
    }
}
