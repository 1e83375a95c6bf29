//! The local runtime's command line, as a library function, so that an
//! app with its own job types runs the same runtime with its own registry.
//!
//! ```text
//! longrun-local [--template template.yaml] [--stack longrun-local] [--port 3000]
//!               [--host 127.0.0.1] [--no-workers] [--fault Function:Operation[=p] …]
//!               [--jwks FILE] [--parameter-overrides K=V …]
//! longrun-local token --key PEM --kid KID --issuer ISS --audience AUD SUB
//! ```
//!
//! `token` prints a JWT for `SUB`, signed with the PKCS#8 RSA key `PEM`:
//! an identity provider for a runtime started with `--jwks` (tests, and
//! `make smoke` against the local runtime).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{api, JobTypes, Options};
use longrun_aws::AwsClients;

const USAGE: &str = "usage: longrun-local [--template PATH] [--stack NAME] [--host HOST] [--port PORT] \
                     [--no-workers] [--fault FUNCTION:OPERATION[=P]] [--jwks FILE] [--parameter-overrides KEY=VALUE ...]\n\
                     longrun-local token --key PEM --kid KID --issuer ISS --audience AUD SUB";

struct Cli {
    options: Options,
    host: String,
    port: u16,
}

fn parse_args(job_types: JobTypes) -> Result<Cli, String> {
    let mut cli = Cli {
        options: Options {
            template: PathBuf::from("template.yaml"),
            stack: "longrun-local".into(),
            parameter_overrides: BTreeMap::new(),
            workers: true,
            faults: BTreeMap::new(),
            base_url: None,
            job_types,
            jwks: None,
        },
        host: "127.0.0.1".into(),
        port: 3000,
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--template" => cli.options.template = value("--template")?.into(),
            "--stack" => cli.options.stack = value("--stack")?,
            "--host" => cli.host = value("--host")?,
            "--port" => cli.port = value("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--no-workers" => cli.options.workers = false,
            "--jwks" => cli.options.jwks = Some(value("--jwks")?.into()),
            "--fault" => {
                let rule = value("--fault")?;
                let (function, operations) = rule.split_once(':').ok_or(format!(
                    "--fault {rule}: expected FunctionLogicalId:Operation[=probability]"
                ))?;
                cli.options
                    .faults
                    .entry(function.to_owned())
                    .and_modify(|rules| {
                        rules.push(',');
                        rules.push_str(operations);
                    })
                    .or_insert_with(|| operations.to_owned());
            }
            "--parameter-overrides" => {
                let mut pieces = Vec::new();
                while let Some(arg) = args.next_if(|a| !a.starts_with("--")) {
                    pieces.push(arg);
                }
                for pair in crate::parse_overrides(&pieces.join(" "))? {
                    cli.options.parameter_overrides.insert(pair.0, pair.1);
                }
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(cli)
}

/// Runs the local runtime as its command line says, with the job types
/// `job_types` makes: `longrun-local` runs longrun's own, an app's own
/// local runner (see examples/) its registry. Returns when interrupted.
pub async fn run(job_types: JobTypes) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if std::env::args().nth(1).as_deref() == Some("token") {
        match token(std::env::args().skip(2)) {
            Ok(token) => println!("{token}"),
            Err(message) => {
                eprintln!("{message}");
                std::process::exit(2);
            }
        }
        return Ok(());
    }
    longrun_core::telemetry::init();
    let cli = match parse_args(job_types) {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let Ok(mut endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        eprintln!("AWS_ENDPOINT_URL is not set: the local runtime only runs against an emulator (make dev starts one)");
        std::process::exit(2);
    };
    for service in ["DYNAMODB", "SQS", "S3"] {
        if let Some(own) = std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
            .ok()
            .filter(|v| !v.is_empty())
        {
            endpoint.push_str(&format!(", {} at {own}", service.to_lowercase()));
        }
    }
    // One process plays every function: one recorder, written every second.
    longrun_core::metrics::init("longrun", Some(std::time::Duration::from_secs(1)));
    let shared = longrun_aws::http::load_sdk_config().await;
    let clients = AwsClients::from_sdk_config(&shared);
    let mut options = cli.options.clone();
    options.base_url = Some(format!("http://{}:{}", cli.host, cli.port));
    let stack = crate::start(&options, &shared, &clients).await?;
    let listener = tokio::net::TcpListener::bind((cli.host.as_str(), cli.port)).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, %endpoint, stack = %cli.options.stack, "longrun local runtime ready");
    println!("longrun local runtime: API on http://{address} (emulator at {endpoint})");
    axum::serve(listener, api::app(stack.api))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `token --key PEM --kid KID --issuer ISS --audience AUD SUB`: a signed JWT
/// valid for an hour.
fn token(args: impl Iterator<Item = String>) -> Result<String, String> {
    let mut named = BTreeMap::new();
    let mut sub = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--") {
            Some(name @ ("key" | "kid" | "issuer" | "audience")) => {
                named.insert(name.to_owned(), args.next().ok_or(format!("--{name} needs a value"))?);
            }
            Some(other) => return Err(format!("unknown argument --{other}\n{USAGE}")),
            None => sub = Some(arg),
        }
    }
    let get = |name: &str| named.get(name).cloned().ok_or(format!("token needs --{name}\n{USAGE}"));
    let sub = sub.ok_or(format!("token needs the subject\n{USAGE}"))?;
    let pem = std::fs::read_to_string(get("key")?).map_err(|e| format!("--key: {e}"))?;
    let signer = crate::jwt::Signer::from_pem(&pem, &get("kid")?)?;
    Ok(signer.token_for(&sub, &get("issuer")?, &get("audience")?, chrono::Utc::now().timestamp()))
}
