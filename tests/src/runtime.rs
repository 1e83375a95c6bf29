//! Local runtime processes a test starts, kills and restarts itself.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A local runtime process this test owns: its own stack (resources) on
/// the emulator, its own port, and the test settings of `make test`
/// (`LONGRUN_TEST_OVERRIDES`).
pub struct LocalRuntime {
    child: Option<std::process::Child>,
    pub api: String,
    pub stack: String,
    extra_args: Vec<String>,
    logs: Vec<std::path::PathBuf>,
}

impl LocalRuntime {
    /// Starts `longrun-local` on a fresh stack named `stack_prefix-<uuid>`.
    pub async fn start(stack_prefix: &str, extra_args: &[&str]) -> LocalRuntime {
        let mut runtime = LocalRuntime {
            child: None,
            api: String::new(),
            stack: format!("{stack_prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            logs: Vec::new(),
        };
        runtime.spawn().await;
        runtime
    }

    async fn spawn(&mut self) {
        let bin = std::env::var("LONGRUN_LOCAL_BIN")
            .expect("LONGRUN_LOCAL_BIN is not set: run the end-to-end tests through `make test`");
        let template = std::env::var("LONGRUN_TEMPLATE").expect("LONGRUN_TEMPLATE is not set");
        let overrides = std::env::var("LONGRUN_TEST_OVERRIDES").unwrap_or_default();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap().port()
        };
        let log = std::env::temp_dir().join(format!("{}-{}.log", self.stack, self.logs.len()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = std::process::Command::new(bin)
            .args([
                "--template",
                &template,
                "--stack",
                &self.stack,
                "--port",
                &port.to_string(),
            ])
            // One argument: longrun-local splits it as `sam deploy` would.
            .args(["--parameter-overrides", &overrides])
            .args(&self.extra_args)
            // Verify callers' JWTs as the stack under test does.
            .args(
                std::env::var("LONGRUN_JWKS")
                    .ok()
                    .filter(|j| !j.is_empty())
                    .map(|j| ["--jwks".to_owned(), j])
                    .into_iter()
                    .flatten(),
            )
            .env("LOG_FORMAT", "json")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start longrun-local");
        self.child = Some(child);
        self.logs.push(log);
        self.api = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("{}/_local/health", self.api)).await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the local runtime did not start: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: the process dies mid-whatever, as a Lambda sandbox can.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same stack again (new process, new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Starts the same stack again with other arguments.
    pub async fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        self.restart().await;
    }

    /// Everything every run of this runtime logged.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The JSON log lines every run wrote.
    pub fn log_events(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.kill();
    }
}
