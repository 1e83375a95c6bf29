//! The dashboard's pages as HTML: plain server-rendered markup, one small
//! stylesheet, and on the job page one short script that follows the job's
//! events. Every value from the stack is escaped ([`escape`]).

use longrun_core::time::rfc3339;
use longrun_core::{JobRecord, JobStatus};

use crate::dlq::Entry;
use crate::jobs::{Filter, Tally};
use crate::queues::{Oldest, QueueState};

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;max-width:70em;color:#222}\
nav a{margin-right:1em}table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;\
padding:.3em .7em;text-align:left}th{background:#f4f4f4}progress{width:20em}.bad{color:#a00}\
form.inline{display:inline}button{cursor:pointer}code{font-size:13px}";

/// `text` safe inside HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the navigation, `title` and `body` (already HTML).
pub(crate) fn page(title: &str, source: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{t}</title><style>{STYLE}</style></head><body>\
         <nav><b>longrun</b> · <a href=\"/\">queues</a><a href=\"/dead-letters\">dead letters</a>\
         <a href=\"/jobs\">jobs</a><a href=\"/mine\">my jobs</a><form class=inline action=\"/jobs\"><input name=id placeholder=\"job id\" size=38>\
         <button>open</button></form></nav><p><small>{s}</small></p><h1>{t}</h1>{body}</body></html>",
        t = escape(title),
        s = escape(source),
    )
}

/// Rows as a table; every cell is HTML already.
pub(crate) fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "<p>none</p>".into();
    }
    let head: String = match head.iter().all(|h| h.is_empty()) {
        true => String::new(),
        false => head.iter().map(|h| format!("<th>{}</th>", escape(h))).collect(),
    };
    let rows: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr>{}</tr>",
                r.iter().map(|c| format!("<td>{c}</td>")).collect::<String>()
            )
        })
        .collect();
    let head = if head.is_empty() {
        head
    } else {
        format!("<tr>{head}</tr>")
    };
    format!("<table>{head}{rows}</table>")
}

pub(crate) fn job_link(id: &str) -> String {
    format!("<a href=\"/jobs/{0}\"><code>{0}</code></a>", escape(id))
}

/// The queues: depths, and the oldest ready job's age per work queue.
pub(crate) fn queues(states: &[QueueState], oldest: &std::collections::BTreeMap<String, Oldest>) -> String {
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            let count = |n: Option<u64>| n.map_or("?".into(), |n| n.to_string());
            let age = s
                .queue
                .name
                .as_deref()
                .and_then(|name| oldest.get(name))
                .map_or(String::new(), |o| {
                    format!("{} s ({})", o.age_ms / 1000, job_link(&o.job_id))
                });
            vec![
                escape(s.queue.label()),
                escape(&format!("{:?}", s.kind)),
                count(s.visible),
                count(s.delayed),
                count(s.in_flight),
                age,
                s.error
                    .as_deref()
                    .map_or(String::new(), |e| format!("<span class=bad>{}</span>", escape(e))),
            ]
        })
        .collect();
    table(
        &[
            "queue",
            "kind",
            "waiting",
            "delayed",
            "in flight",
            "oldest ready job",
            "error",
        ],
        &rows,
    )
}

/// The dead letters, each with a link to redrive its job.
pub(crate) fn dead_letters(queues: &[(String, Vec<Entry>)]) -> String {
    let mut out = String::new();
    for (queue, entries) in queues {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let job = e.job_id.as_deref().map_or("poison".into(), job_link);
                let status = e.job.as_ref().map_or(String::new(), |j| escape(&j.status));
                let action = match (&e.job_id, &e.job) {
                    (Some(id), Some(j)) if j.status == "DEAD_LETTERED" => {
                        format!("<a href=\"/dead-letters/redrive?job={}\">redrive…</a>", escape(id))
                    }
                    _ => String::new(),
                };
                let note = e.note.as_deref().or(e.poison_body.as_deref()).unwrap_or("");
                vec![
                    job,
                    status,
                    e.sent_at.as_deref().map(escape).unwrap_or_default(),
                    escape(note),
                    action,
                ]
            })
            .collect();
        out.push_str(&format!("<h2>{}</h2>", escape(queue)));
        out.push_str(&table(&["job", "status", "sent", "note", ""], &rows));
    }
    if out.is_empty() {
        out.push_str("<p>the stack has no dead-letter queues</p>");
    }
    out
}

/// An operator action's confirmation: what it does, and a button that does it.
pub(crate) fn confirm(what: &str, action: &str, fields: &[(&str, &str)], button: &str) -> String {
    let hidden: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=hidden name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!(
        "<p>{}</p><form method=post action=\"{}\">{hidden}<button id=confirm>{}</button> <a href=\"javascript:history.back()\">cancel</a></form>",
        escape(what),
        escape(action),
        escape(button)
    )
}

/// A `/jobs` link with `filter`'s fields, `status` in place of its own,
/// and the rest given.
fn jobs_href(filter: &Filter, status: Option<&str>, rest: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse("http://dashboard/jobs").expect("a URL");
    {
        let mut query = url.query_pairs_mut();
        let fields = [("owner", filter.owner), ("type", filter.job_type), ("status", status)];
        for (name, value) in fields {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        for (name, value) in rest {
            query.append_pair(name, value);
        }
    }
    escape(&format!("/jobs?{}", url.query().unwrap_or_default()))
}

/// The jobs filter (owner, type, status), counts by status, the newest
/// jobs of the status asked for, and when the read stopped before the end
/// of the table, a link to the next part.
pub(crate) fn jobs(tally: &Tally, filter: &Filter, started_later: bool, read: Option<usize>) -> String {
    let options: String = std::iter::once(String::from("<option value=\"\">any status</option>"))
        .chain(JobStatus::ALL.iter().map(|s| {
            let selected = if filter.status == Some(*s) { " selected" } else { "" };
            format!("<option{selected}>{s}</option>")
        }))
        .collect();
    let form = format!(
        "<form action=\"/jobs\"><input name=owner placeholder=owner value=\"{}\"> \
         <input name=type placeholder=type value=\"{}\"> <select name=status>{options}</select> \
         <button id=filter>filter</button></form>",
        escape(filter.owner.unwrap_or("")),
        escape(filter.job_type.unwrap_or("")),
    );
    let counts: String = tally
        .counts
        .iter()
        .map(|(status, n)| {
            format!(
                "<a href=\"{}\">{}</a>: {n} ",
                jobs_href(filter, Some(status), &[]),
                escape(status)
            )
        })
        .collect();
    let rows: Vec<Vec<String>> = tally
        .newest
        .iter()
        .map(|j| {
            vec![
                job_link(&j.id),
                escape(&j.owner),
                escape(&j.job_type),
                escape(&j.queue),
                escape(&j.status),
                escape(&rfc3339(j.updated_at)),
            ]
        })
        .collect();
    let listed = match tally.status {
        Some(status) => table(&["job", "owner", "type", "queue", "status", "updated"], &rows).replace(
            "<table>",
            &format!("<p>{} {status}, newest first:</p><table>", tally.matching),
        ),
        None => "<p>pick a status to list its newest jobs</p>".into(),
    };
    let part = match (&tally.next, started_later) {
        (None, false) => String::new(),
        (None, true) => "<p>the last part of the table: these counts are of this part only</p>".into(),
        (Some(next), _) => {
            let mut rest = vec![("cursor", next.encode())];
            rest.extend(read.map(|r| ("read", r.to_string())));
            format!(
                "<p>the table is bigger than one page reads: these counts are of this part only. \
                 <a id=next href=\"{}\">next part</a></p>",
                jobs_href(filter, filter.status.map(JobStatus::as_str), &rest)
            )
        }
    };
    format!("{form}<p>{} jobs: {counts}</p>{part}{listed}", tally.total)
}

/// One job, its links, and its live progress (the script follows
/// `/jobs/{id}/events` and shows each state, then the results).
pub(crate) fn job(job: &JobRecord) -> String {
    let id = escape(&job.id.to_string());
    let mut facts = vec![
        ("status", format!("<span id=status>{}</span>", job.status)),
        ("type", escape(&job.job_type)),
        ("owner", escape(&job.owner)),
        ("queue", escape(&job.queue)),
        (
            "attempts",
            format!(
                "{} (takeovers {}, generation {})",
                job.attempts, job.takeovers, job.generation
            ),
        ),
        ("created", escape(&rfc3339(job.created_at))),
    ];
    if let Some(error) = &job.error {
        facts.push((
            "error",
            format!(
                "<span class=bad>{}: {}</span>",
                escape(&error.code),
                escape(&error.message)
            ),
        ));
    }
    if let Some(chain) = &job.chain {
        facts.push(("chain", job_link(&chain.chain_id.to_string())));
    }
    if let Some(schedule) = &job.schedule {
        let tick = rfc3339(schedule.tick_at);
        let text = format!("{}, the tick of {tick}", schedule.schedule_id);
        facts.push(("schedule", escape(&text)));
    }
    let rows: Vec<Vec<String>> = facts.into_iter().map(|(k, v)| vec![escape(k), v]).collect();
    let cancel = if job.status.is_terminal() {
        String::new()
    } else {
        format!("<p id=cancel><a href=\"/jobs/{id}/cancel\">cancel…</a></p>")
    };
    format!(
        "{facts}<p><progress id=progress max=100 value={progress}></progress> <span id=percent>{progress}</span>% \
         <span id=message>{message}</span></p><ul id=results></ul>{cancel}\
         <script>\
         const seen = [];\
         const events = new EventSource('/jobs/{id}/events');\
         const show = (j) => {{ document.getElementById('status').textContent = j.status;\
           document.getElementById('progress').value = j.progress; document.getElementById('percent').textContent = j.progress;\
           document.getElementById('message').textContent = j.message || ''; seen.push(j.progress);\
           document.body.dataset.seen = seen.join(','); }};\
         events.addEventListener('job', (e) => show(JSON.parse(e.data)));\
         events.addEventListener('end', (e) => {{ const j = JSON.parse(e.data); show(j); events.close();\
           const list = document.getElementById('results');\
           for (const r of j.results) {{ const a = document.createElement('a'); a.className = 'result'; a.href = r.url;\
             a.textContent = r.name; const li = document.createElement('li'); li.append(a); list.append(li); }}\
           document.getElementById('cancel')?.remove(); document.title = 'ended ' + j.status; }});\
         </script>",
        facts = table(&["", ""], &rows),
        progress = job.progress,
        message = escape(job.progress_message.as_deref().unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_the_stack_is_escaped() {
        for (raw, safe) in [
            ("<script>", "&lt;script&gt;"),
            ("a\"b", "a&quot;b"),
            ("it's", "it&#39;s"),
            ("x&y", "x&amp;y"),
            ("plain", "plain"),
        ] {
            assert_eq!(escape(raw), safe);
        }
        let html = confirm("redrive <b>", "/x\"", &[("job", "\"><script>")], "go");
        assert!(!html.contains("<b>") && !html.contains("\"><script>"), "{html}");
        let mut record =
            longrun_core::fixtures::queued_job("<img src=x onerror=alert(1)>", "sleep", serde_json::json!({}));
        record.progress_message = Some("</script><script>alert(1)".into());
        let html = job(&record);
        assert!(
            !html.contains("<img src=x") && !html.contains("</script><script>alert"),
            "{html}"
        );
    }
}
