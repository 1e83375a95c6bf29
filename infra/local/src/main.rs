//! `longrun-local`: runs the stack of `template.yaml` on this machine
//! against the AWS emulator at `AWS_ENDPOINT_URL`.
//!
//! ```text
//! longrun-local [--template template.yaml] [--stack longrun-local] [--port 3000]
//!               [--host 127.0.0.1] [--no-workers] [--parameter-overrides K=V …]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use longrun::aws::AwsClients;
use longrun_local::{api, Options};

const USAGE: &str = "usage: longrun-local [--template PATH] [--stack NAME] [--host HOST] [--port PORT] \
                     [--no-workers] [--parameter-overrides KEY=VALUE ...]";

struct Cli {
    options: Options,
    host: String,
    port: u16,
}

fn parse_args() -> Result<Cli, String> {
    let mut cli = Cli {
        options: Options {
            template: PathBuf::from("template.yaml"),
            stack: "longrun-local".into(),
            parameter_overrides: BTreeMap::new(),
            workers: true,
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
            "--parameter-overrides" => {
                while let Some(pair) = args.next_if(|a| !a.starts_with("--")) {
                    for pair in pair.split_whitespace() {
                        let (k, v) = pair.split_once('=').ok_or(format!("{pair}: expected KEY=VALUE"))?;
                        cli.options.parameter_overrides.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(cli)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    longrun::telemetry::init();
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        eprintln!("AWS_ENDPOINT_URL is not set: the local runtime only runs against an emulator (make dev starts one)");
        std::process::exit(2);
    };
    let shared = aws_config::load_from_env().await;
    let region = shared
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let clients = AwsClients::from_sdk_config(&shared);
    let stack = longrun_local::start(&cli.options, &clients, &region).await?;
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
