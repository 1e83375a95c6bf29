//! End-to-end tests over HTTP against a running stack (see `longrun_e2e`).
//! They are `#[ignore]`d for a plain `cargo test`; `make test` starts the
//! emulator and the local runtime and runs them with `--include-ignored`.

mod admin_view;
mod auth;
mod chains;
mod cli;
mod delivery;
mod events;
mod failures;
mod jobs;
mod local_only;
mod metrics;
mod schedules;
mod submit;
mod webdriver;
mod webhooks;
