//! The owner view, "my jobs": a caller's jobs as the public API shows them
//! to that caller (`GET /jobs` with the caller's bearer token, through
//! `longrun-client`), not as the operator's table reads them. The token is
//! pasted into a form and travels only in `POST` bodies (never in a URL or
//! a log); the dashboard keeps none of it.

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use longrun_client::api::JobList;
use longrun_client::{Client, ClientError};
use longrun_core::JobStatus;
use serde::Deserialize;

use super::pages::{escape, job_link, table};
use super::{html, problem, Shared, Ui};

/// Jobs on one page of the owner view.
const PAGE: u32 = 20;

/// `GET /mine`: the form that asks for the caller's token.
pub(crate) async fn form(State(ui): Shared) -> Response {
    html("my jobs", &ui, &token_form(&ui, "", "", None))
}

#[derive(Deserialize)]
pub(crate) struct MineForm {
    /// This dashboard's per-process token (the form is its own).
    token: String,
    /// The caller's API token, sent as `Authorization: Bearer`.
    bearer: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

/// `POST /mine`: one page of the caller's jobs from the public API.
pub(crate) async fn list(State(ui): Shared, Form(form): Form<MineForm>) -> Response {
    if form.token != ui.token {
        return problem(StatusCode::FORBIDDEN, &ui, "this form is not from this dashboard");
    }
    let Some(api) = ui.stack.api.as_deref() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &ui,
            "the stack's source names no API URL: set LONGRUN_API_URL, or use --stack or --local",
        );
    };
    let status = Some(form.status.trim()).filter(|s| !s.is_empty());
    let cursor = Some(form.cursor.trim()).filter(|c| !c.is_empty());
    let answer = match Client::new(api, form.bearer.trim()) {
        Ok(client) => client.list(status, Some(PAGE), cursor).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(page) => {
            let mut body = token_form(&ui, &form.bearer, &form.status, None);
            body.push_str(&jobs(&ui, &page, &form));
            html("my jobs", &ui, &body)
        }
        Err(ClientError::Problem(p)) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let said = format!("the API answered {}: {} {}", p.status, p.title, p.detail);
            let mut answer = html("my jobs", &ui, &token_form(&ui, "", &form.status, Some(&said)));
            *answer.status_mut() = status;
            answer
        }
        Err(e) => problem(StatusCode::BAD_GATEWAY, &ui, &e.to_string()),
    }
}

/// The token form (prefilled when paging on), with what went wrong, if anything.
fn token_form(ui: &Ui, bearer: &str, status: &str, error: Option<&str>) -> String {
    let options: String = std::iter::once("")
        .chain(JobStatus::ALL.iter().map(|s| s.as_str()))
        .map(|s| {
            let selected = if s == status { " selected" } else { "" };
            let label = if s.is_empty() { "any status" } else { s };
            format!("<option value=\"{s}\"{selected}>{label}</option>")
        })
        .collect();
    let error = error.map_or(String::new(), |e| format!("<p class=bad id=error>{}</p>", escape(e)));
    format!(
        "<p>The jobs one caller sees through the public API, with that caller's token \
         (a JWT on AWS; locally the caller's name). The dashboard keeps no token.</p>{error}\
         <form method=post action=\"/mine\"><input type=hidden name=\"token\" value=\"{csrf}\">\
         <input type=password name=bearer placeholder=\"API token\" size=40 value=\"{bearer}\"> \
         <select name=status>{options}</select> <button id=mine>show my jobs</button></form>",
        csrf = escape(&ui.token),
        bearer = escape(bearer),
    )
}

/// A page of the caller's jobs, and a button to the next page.
fn jobs(ui: &Ui, page: &JobList, form: &MineForm) -> String {
    let rows: Vec<Vec<String>> = page
        .jobs
        .iter()
        .map(|j| {
            vec![
                job_link(&j.id),
                escape(&j.job_type),
                escape(&j.status),
                format!("{} %", j.progress),
                escape(&j.created_at),
            ]
        })
        .collect();
    let mut out = table(&["job", "type", "status", "progress", "created"], &rows);
    if let Some(next) = &page.next_cursor {
        out.push_str(&format!(
            "<form method=post action=\"/mine\"><input type=hidden name=\"token\" value=\"{}\">\
             <input type=hidden name=\"bearer\" value=\"{}\"><input type=hidden name=\"status\" value=\"{}\">\
             <input type=hidden name=\"cursor\" value=\"{}\"><button id=next>next page</button></form>",
            escape(&ui.token),
            escape(&form.bearer),
            escape(&form.status),
            escape(next)
        ));
    }
    out
}
