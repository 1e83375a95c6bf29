//! Where a stack's resources are: the functions' environment variables, a
//! local runtime (`--local URL`: its `/_local/resources` and the
//! reconciler's environment), or a deployed stack's CloudFormation outputs
//! (`--stack NAME` asks the `aws` CLI for them, `--stack-outputs FILE`
//! reads them saved). Outputs name the table, the bucket and every queue
//! (`FastQueueUrl`, `FastDeadLetterQueueUrl`, …); the other settings keep
//! their defaults unless the same environment variables set them.

use std::collections::BTreeMap;

use longrun_core::webhook::{WEBHOOK_DEAD_LETTER_QUEUE, WEBHOOK_QUEUE};
use longrun_core::Config;
use serde_json::Value;

/// Where to find the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `JOBS_TABLE`, `QUEUE_URLS`, … as the functions read them.
    Env,
    /// A local runtime's base URL.
    Local(String),
    /// A deployed stack's name: its outputs from `aws cloudformation describe-stacks`.
    CloudFormation(String),
    /// A file (`-`: standard input) holding a stack's outputs as JSON.
    Outputs(String),
}

impl Source {
    /// How the output names the source.
    pub fn describe(&self) -> String {
        match self {
            Source::Env => "environment (JOBS_TABLE, QUEUE_URLS, …)".to_owned(),
            Source::Local(url) => format!("local runtime {url}"),
            Source::CloudFormation(name) => format!("stack {name} (CloudFormation outputs)"),
            Source::Outputs(path) => format!("stack outputs from {path}"),
        }
    }
}

/// One queue of the stack as its source names it (before SQS is asked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRef {
    /// The template's logical id (`FastQueue`), when the source knows it.
    pub logical_id: Option<String>,
    /// Its name in `QUEUE_URLS` (`fast`, `webhooks`), if it has one: the
    /// name job records carry in `queue`.
    pub name: Option<String>,
    /// The queue URL.
    pub url: String,
}

impl QueueRef {
    /// The queue's own SQS name: the last segment of its URL.
    pub fn sqs_name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }

    /// How the output names it: logical id, else `QUEUE_URLS` name, else SQS name.
    pub fn label(&self) -> &str {
        self.logical_id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or_else(|| self.sqs_name())
    }

    /// Whether `wanted` names this queue (any of its names; logical ids and
    /// `QUEUE_URLS` names case-insensitively).
    pub fn is_named(&self, wanted: &str) -> bool {
        self.logical_id
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(wanted))
            || self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            || self.sqs_name() == wanted
            || self.url == wanted
    }
}

/// What a command needs to know about the stack.
pub struct Stack {
    /// The functions' configuration (table, queues, settings).
    pub config: Config,
    /// Every queue the source names; dead-letter queues it does not name
    /// are found later through the queues' redrive policies.
    pub queues: Vec<QueueRef>,
    /// Where all this came from, for the output.
    pub source: String,
    /// The public API's base URL, where the source says (`ApiUrl`, the
    /// local runtime, or `LONGRUN_API_URL`): the dashboard's owner view.
    pub api: Option<String>,
}

/// The configuration alone (what `requeue` and `usage` need).
pub async fn config(source: &Source) -> Result<Config, String> {
    load(source).await.map(|stack| stack.config)
}

/// Reads the stack from `source`.
pub async fn load(source: &Source) -> Result<Stack, String> {
    let mut api = std::env::var("LONGRUN_API_URL").ok().filter(|url| !url.is_empty());
    let (config, mut queues) = match source {
        Source::Env => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            (config, Vec::new())
        }
        Source::Local(url) => {
            let base = url.trim_end_matches('/');
            let environment: BTreeMap<String, String> =
                get_json(&format!("{base}/_local/environment/ReconcilerFunction")).await?;
            let config = Config::from_lookup(move |name| environment.get(name).cloned()).map_err(|e| e.to_string())?;
            let resources: Value = get_json(&format!("{base}/_local/resources")).await?;
            api = Some(base.to_owned());
            (config, local_queues(&resources))
        }
        Source::CloudFormation(name) => {
            let outputs = parse_outputs(&describe_stack(name)?)?;
            api = outputs.get("ApiUrl").cloned().or(api);
            outputs_config(&outputs)?
        }
        Source::Outputs(path) => {
            let text = if path == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
            } else {
                std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
            };
            let outputs = parse_outputs(&text).map_err(|e| format!("{path}: {e}"))?;
            api = outputs.get("ApiUrl").cloned().or(api);
            outputs_config(&outputs)?
        }
    };
    name_queues(&mut queues, &config);
    Ok(Stack {
        config,
        queues,
        source: source.describe(),
        api,
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("cannot read the local runtime's configuration: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// The queues of a local runtime's `/_local/resources`: every logical id
/// whose ARN is an SQS one, with its URL.
pub fn local_queues(resources: &Value) -> Vec<QueueRef> {
    let Some(arns) = resources["arns"].as_object() else {
        return Vec::new();
    };
    arns.iter()
        .filter(|(_, arn)| arn.as_str().is_some_and(|a| a.starts_with("arn:aws:sqs:")))
        .filter_map(|(logical_id, _)| {
            Some(QueueRef {
                logical_id: Some(logical_id.clone()),
                name: None,
                url: resources["refs"][logical_id].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// Gives each queue its `QUEUE_URLS` name, and adds the `QUEUE_URLS`
/// queues the source did not name (all of them for [`Source::Env`]).
fn name_queues(queues: &mut Vec<QueueRef>, config: &Config) {
    for (name, url) in &config.queue_urls {
        match queues.iter_mut().find(|q| &q.url == url) {
            Some(queue) => queue.name = Some(name.clone()),
            None => queues.push(QueueRef {
                logical_id: None,
                name: Some(name.clone()),
                url: url.clone(),
            }),
        }
    }
}

/// Runs `aws cloudformation describe-stacks` for `name`: its JSON answer.
fn describe_stack(name: &str) -> Result<String, String> {
    let output = std::process::Command::new("aws")
        .args([
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            name,
            "--output",
            "json",
        ])
        .output()
        .map_err(|e| {
            format!("cannot run the aws CLI for the stack's outputs ({e}); save them and use --stack-outputs FILE")
        })?;
    if !output.status.success() {
        return Err(format!(
            "aws cloudformation describe-stacks --stack-name {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

/// A stack's outputs, key to value, from any of the shapes the tools print:
/// `aws cloudformation describe-stacks` (`{"Stacks": [{"Outputs": […]}]}`),
/// its `--query 'Stacks[0].Outputs'` or `sam list stack-outputs --output
/// json` (`[{"OutputKey": …, "OutputValue": …}]`), or a plain object.
pub fn parse_outputs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &value {
        Value::Object(object) if object.contains_key("Stacks") => {
            let stacks = value["Stacks"].as_array().ok_or("Stacks is not a list")?;
            match stacks.as_slice() {
                [stack] => stack["Outputs"].clone(),
                [] => return Err("no such stack".into()),
                _ => return Err("more than one stack: name one".into()),
            }
        }
        Value::Object(object) => {
            return Ok(object
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect())
        }
        _ => value.clone(),
    };
    let list = list.as_array().ok_or("expected a list of {OutputKey, OutputValue}")?;
    Ok(list
        .iter()
        .filter_map(|o| {
            Some((
                o["OutputKey"].as_str()?.to_owned(),
                o["OutputValue"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// The `QUEUE_URLS` name the template gives a queue (its `Globals`):
/// `FastQueue` → `fast`, `WebhookQueue` → `webhooks`; none for the job
/// dead-letter queues, which the functions do not send to.
pub fn config_name(logical_id: &str) -> Option<String> {
    match logical_id {
        "WebhookQueue" => Some(WEBHOOK_QUEUE.to_owned()),
        "WebhookDeadLetterQueue" => Some(WEBHOOK_DEAD_LETTER_QUEUE.to_owned()),
        id if id.contains("DeadLetter") => None,
        id => Some(id.strip_suffix("Queue").unwrap_or(id).to_ascii_lowercase()),
    }
}

/// The configuration and queues a stack's outputs describe: table, bucket
/// and queues from the outputs, every other setting from the environment
/// (or its default).
pub fn outputs_config(outputs: &BTreeMap<String, String>) -> Result<(Config, Vec<QueueRef>), String> {
    outputs_config_with(outputs, |name| std::env::var(name).ok())
}

fn outputs_config_with(
    outputs: &BTreeMap<String, String>,
    env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Result<(Config, Vec<QueueRef>), String> {
    let queues: Vec<QueueRef> = outputs
        .iter()
        .filter_map(|(key, url)| {
            let logical_id = key.strip_suffix("Url").filter(|id| id.ends_with("Queue"))?;
            Some(QueueRef {
                logical_id: Some(logical_id.to_owned()),
                name: None,
                url: url.clone(),
            })
        })
        .collect();
    let queue_urls = queues
        .iter()
        .filter_map(|q| Some(format!("{}={}", config_name(q.logical_id.as_deref()?)?, q.url)))
        .collect::<Vec<_>>()
        .join(",");
    let outputs = outputs.clone();
    let from_outputs = move |key: &str| outputs.get(key).cloned();
    let config = Config::from_lookup(move |name| match name {
        "JOBS_TABLE" => from_outputs("JobsTableName"),
        "JOBS_BUCKET" => from_outputs("JobsBucketName"),
        "QUEUE_URLS" => Some(queue_urls.clone()),
        "EVENTS_URL" => from_outputs("EventsUrl").or_else(|| env(name)),
        _ => env(name),
    })
    .map_err(|e| format!("stack outputs: {e}"))?;
    Ok((config, queues))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs() -> BTreeMap<String, String> {
        let q = |n: &str| format!("https://sqs.eu-west-1.amazonaws.com/123456789012/prod-{n}-AbC");
        [
            ("ApiUrl", "https://x.execute-api.eu-west-1.amazonaws.com".to_owned()),
            ("JobsTableName", "prod-JobsTable-1".to_owned()),
            ("JobsBucketName", "prod-jobsbucket-1".to_owned()),
            ("FastQueueUrl", q("FastQueue")),
            ("SlowQueueUrl", q("SlowQueue")),
            ("UrgentQueueUrl", q("UrgentQueue")),
            ("BulkQueueUrl", q("BulkQueue")),
            ("FastDeadLetterQueueUrl", q("FastDeadLetterQueue")),
            ("SlowDeadLetterQueueUrl", q("SlowDeadLetterQueue")),
            ("WebhookQueueUrl", q("WebhookQueue")),
            ("WebhookDeadLetterQueueUrl", q("WebhookDeadLetterQueue")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    #[test]
    fn outputs_parse_from_every_shape_the_tools_print() {
        let list = json!([{"OutputKey": "JobsTableName", "OutputValue": "t", "Description": "d"}]);
        let expected: BTreeMap<String, String> = [("JobsTableName".to_owned(), "t".to_owned())].into();
        assert_eq!(parse_outputs(&list.to_string()).unwrap(), expected);
        let described = json!({"Stacks": [{"StackName": "s", "Outputs": list}]});
        assert_eq!(parse_outputs(&described.to_string()).unwrap(), expected);
        assert_eq!(parse_outputs(r#"{"JobsTableName": "t"}"#).unwrap(), expected);
        assert!(parse_outputs(r#"{"Stacks": []}"#).is_err());
        assert!(parse_outputs("nope").is_err());
    }

    #[test]
    fn queue_names_follow_the_template() {
        assert_eq!(config_name("FastQueue").as_deref(), Some("fast"));
        assert_eq!(config_name("BulkQueue").as_deref(), Some("bulk"));
        assert_eq!(config_name("WebhookQueue").as_deref(), Some(WEBHOOK_QUEUE));
        assert_eq!(
            config_name("WebhookDeadLetterQueue").as_deref(),
            Some(WEBHOOK_DEAD_LETTER_QUEUE)
        );
        assert_eq!(config_name("FastDeadLetterQueue"), None);
    }

    #[test]
    fn outputs_give_the_table_and_every_queue() {
        let (config, mut queues) = outputs_config_with(&outputs(), |name| {
            (name == "ENQUEUE_GRACE_SECONDS").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(config.jobs_table, "prod-JobsTable-1");
        assert_eq!(config.enqueue_grace_seconds, 7, "other settings from the environment");
        let names: Vec<&str> = config.queue_urls.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bulk",
                "fast",
                "slow",
                "urgent",
                WEBHOOK_DEAD_LETTER_QUEUE,
                WEBHOOK_QUEUE
            ]
        );
        assert_eq!(queues.len(), 8, "the job dead-letter queues too");
        name_queues(&mut queues, &config);
        assert_eq!(queues.len(), 8, "no queue twice");
        let fast = queues.iter().find(|q| q.is_named("fast")).unwrap();
        assert_eq!(fast.label(), "FastQueue");
        assert!(fast.is_named("fastqueue"));
        assert_eq!(fast.sqs_name(), "prod-FastQueue-AbC");
        assert!(queues
            .iter()
            .any(|q| q.label() == "SlowDeadLetterQueue" && q.name.is_none()));
    }

    #[test]
    fn local_resources_name_their_queues() {
        let resources = json!({
            "region": "us-east-1",
            "refs": {"FastQueue": "http://q/s-FastQueue", "JobsTable": "s-JobsTable"},
            "arns": {
                "FastQueue": "arn:aws:sqs:us-east-1:123456789012:s-FastQueue",
                "JobsTable": "arn:aws:dynamodb:us-east-1:123456789012:table/s-JobsTable"
            }
        });
        assert_eq!(
            local_queues(&resources),
            [QueueRef {
                logical_id: Some("FastQueue".into()),
                name: None,
                url: "http://q/s-FastQueue".into()
            }]
        );
    }
}
