//! Reads `template.yaml`, the single source of truth, into what the local
//! runtime needs: parameters (with overrides), tables, queues, buckets and
//! functions with their routes, SQS event sources, timeouts and environment.
//! CloudFormation intrinsics (`!Ref`, `!GetAtt`, `!Sub` and their long
//! forms) are resolved against parameters and the resources created locally.
//! It also enforces the design's rules a template could break: visibility
//! timeout ≥ 6 × the worker's timeout, and max attempts below maxReceiveCount.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    Io(#[from] std::io::Error),
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(message.into())
}

/// What `!Ref` and `!GetAtt` resolve to for created resources.
pub trait ResourceLookup {
    fn reference(&self, logical_id: &str) -> Option<String>;
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String>;
    fn region(&self) -> String;
}

/// Nothing created yet: only parameters and pseudo parameters resolve.
pub struct NoResources;

impl ResourceLookup for NoResources {
    fn reference(&self, _: &str) -> Option<String> {
        None
    }
    fn attribute(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn region(&self) -> String {
        "us-east-1".into()
    }
}

/// A DynamoDB table to create.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    pub logical_id: String,
    /// `(name, S|N|B)`.
    pub attributes: Vec<(String, String)>,
    /// `(name, HASH|RANGE)`.
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

/// An SQS queue to create.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout: u32,
    pub message_retention: u32,
    /// The dead-letter queue's logical id and maxReceiveCount.
    pub redrive: Option<(String, u32)>,
}

/// An HTTP route of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

/// An SQS event source mapping of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct SqsSource {
    pub queue_logical_id: String,
    pub batch_size: u32,
    pub max_concurrency: u32,
    pub report_batch_item_failures: bool,
}

/// A Lambda function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary it is built from (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub timeout_seconds: u32,
    pub memory_mb: u32,
    /// Environment variables, unresolved (they may name resources).
    pub environment: BTreeMap<String, Yaml>,
    pub http_routes: Vec<HttpRoute>,
    pub sqs_sources: Vec<SqsSource>,
    /// Schedule expressions of `Schedule` events, unresolved.
    pub schedules: Vec<Yaml>,
}

/// The template, loaded and with parameters settled.
#[derive(Clone, Debug)]
pub struct Template {
    pub parameters: BTreeMap<String, String>,
    resources: BTreeMap<String, Resource>,
    globals_function: Yaml,
}

#[derive(Clone, Debug)]
struct Resource {
    kind: String,
    properties: Yaml,
    metadata: Yaml,
}

impl Template {
    pub fn load(path: &Path, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?, overrides)
    }

    /// Parses template text; `overrides` set parameters like `sam deploy --parameter-overrides`.
    pub fn parse(text: &str, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let root: Yaml = serde_yaml::from_str(text)?;
        let mut parameters = BTreeMap::new();
        if let Some(declared) = root.get("Parameters").and_then(Yaml::as_mapping) {
            for (name, spec) in declared {
                let name = name
                    .as_str()
                    .ok_or_else(|| invalid("parameter names must be strings"))?;
                let value = match overrides.get(name) {
                    Some(value) => value.clone(),
                    None => spec
                        .get("Default")
                        .map(scalar_text)
                        .transpose()?
                        .ok_or_else(|| invalid(format!("parameter {name} has no Default and no override")))?,
                };
                if let Some(allowed) = spec.get("AllowedValues").and_then(Yaml::as_sequence) {
                    let allowed: Vec<String> = allowed.iter().map(scalar_text).collect::<Result<_, _>>()?;
                    if !allowed.contains(&value) {
                        return Err(invalid(format!("parameter {name}={value} is not one of {allowed:?}")));
                    }
                }
                parameters.insert(name.to_owned(), value);
            }
        }
        if let Some(unknown) = overrides.keys().find(|k| !parameters.contains_key(*k)) {
            return Err(invalid(format!("override of unknown parameter {unknown}")));
        }
        let mut resources = BTreeMap::new();
        let declared = root
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .ok_or_else(|| invalid("the template has no Resources"))?;
        for (id, body) in declared {
            let id = id.as_str().ok_or_else(|| invalid("resource ids must be strings"))?;
            let kind = body
                .get("Type")
                .and_then(Yaml::as_str)
                .ok_or_else(|| invalid(format!("resource {id} has no Type")))?;
            resources.insert(
                id.to_owned(),
                Resource {
                    kind: kind.to_owned(),
                    properties: body.get("Properties").cloned().unwrap_or(Yaml::Null),
                    metadata: body.get("Metadata").cloned().unwrap_or(Yaml::Null),
                },
            );
        }
        let globals_function = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Yaml::Null);
        let template = Template {
            parameters,
            resources,
            globals_function,
        };
        template.check_rules()?;
        Ok(template)
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }

    /// Resolves a value that may hold intrinsics into JSON.
    pub fn resolve(&self, value: &Yaml, lookup: &dyn ResourceLookup) -> Result<Json, TemplateError> {
        Ok(match value {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).map_err(|e| invalid(e.to_string()))?,
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => Json::Array(
                items
                    .iter()
                    .map(|item| self.resolve(item, lookup))
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                self.intrinsic(tag.trim_start_matches('!'), &tagged.value, lookup)?
            }
            Yaml::Mapping(map) => {
                if map.len() == 1 {
                    let (key, inner) = map.iter().next().expect("one entry");
                    match key.as_str() {
                        Some("Ref") => return self.intrinsic("Ref", inner, lookup),
                        Some(long) if long.starts_with("Fn::") => {
                            return self.intrinsic(long.trim_start_matches("Fn::"), inner, lookup)
                        }
                        _ => {}
                    }
                }
                let mut out = serde_json::Map::new();
                for (key, inner) in map {
                    let key = key.as_str().ok_or_else(|| invalid("mapping keys must be strings"))?;
                    out.insert(key.to_owned(), self.resolve(inner, lookup)?);
                }
                Json::Object(out)
            }
        })
    }

    fn intrinsic(&self, name: &str, arg: &Yaml, lookup: &dyn ResourceLookup) -> Result<Json, TemplateError> {
        let text = |v: &Yaml| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{name} takes a string")))
        };
        match name {
            "Ref" => self.reference(&text(arg)?, lookup).map(Json::String),
            "GetAtt" => {
                let joined = match arg {
                    Yaml::Sequence(parts) => parts.iter().map(text).collect::<Result<Vec<_>, _>>()?.join("."),
                    other => text(other)?,
                };
                let (id, attribute) = joined
                    .split_once('.')
                    .ok_or_else(|| invalid(format!("GetAtt {joined} needs Resource.Attribute")))?;
                lookup
                    .attribute(id, attribute)
                    .map(Json::String)
                    .ok_or_else(|| invalid(format!("GetAtt {joined} does not resolve (resource not created?)")))
            }
            "Sub" => {
                let pattern = text(arg)?;
                let mut out = String::new();
                let mut rest = pattern.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..]
                        .find('}')
                        .ok_or_else(|| invalid(format!("unclosed ${{ in Sub {pattern}")))?;
                    let name = &rest[start + 2..start + end];
                    let value =
                        if let Some((id, attribute)) = name.split_once('.').filter(|_| !name.starts_with("AWS::")) {
                            lookup
                                .attribute(id, attribute)
                                .ok_or_else(|| invalid(format!("Sub ${{{name}}} does not resolve")))?
                        } else {
                            self.reference(name, lookup)?
                        };
                    out.push_str(&value);
                    rest = &rest[start + end + 1..];
                }
                out.push_str(rest);
                Ok(Json::String(out))
            }
            other => Err(invalid(format!(
                "intrinsic {other} is not supported by the local runtime"
            ))),
        }
    }

    fn reference(&self, name: &str, lookup: &dyn ResourceLookup) -> Result<String, TemplateError> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        match name {
            "AWS::Region" => return Ok(lookup.region()),
            "AWS::AccountId" => return Ok("123456789012".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::StackName" => return Ok("longrun-local".into()),
            _ => {}
        }
        lookup
            .reference(name)
            .ok_or_else(|| invalid(format!("Ref {name} does not resolve (unknown, or not created locally)")))
    }

    fn number(&self, value: Option<&Yaml>, what: &str) -> Result<Option<u32>, TemplateError> {
        let Some(value) = value else { return Ok(None) };
        let resolved = self.resolve(value, &NoResources)?;
        let parsed = match &resolved {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => s.parse().ok(),
            _ => None,
        };
        parsed
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(format!("{what} must be a whole number, got {resolved}")))
    }

    pub fn tables(&self) -> Result<Vec<TableSpec>, TemplateError> {
        self.of_kind("AWS::DynamoDB::Table")
            .map(|(id, r)| {
                let p = &r.properties;
                let pairs = |list: Option<&Yaml>, a: &str, b: &str| -> Result<Vec<(String, String)>, TemplateError> {
                    list.and_then(Yaml::as_sequence)
                        .unwrap_or(&Vec::new())
                        .iter()
                        .map(|item| {
                            let get = |k: &str| {
                                item.get(k)
                                    .and_then(Yaml::as_str)
                                    .map(str::to_owned)
                                    .ok_or_else(|| invalid(format!("table {id}: {k} missing")))
                            };
                            Ok((get(a)?, get(b)?))
                        })
                        .collect()
                };
                let indexes = p
                    .get("GlobalSecondaryIndexes")
                    .and_then(Yaml::as_sequence)
                    .unwrap_or(&Vec::new())
                    .iter()
                    .map(|index| {
                        Ok(IndexSpec {
                            name: index
                                .get("IndexName")
                                .and_then(Yaml::as_str)
                                .ok_or_else(|| invalid(format!("table {id}: index without IndexName")))?
                                .to_owned(),
                            key_schema: pairs(index.get("KeySchema"), "AttributeName", "KeyType")?,
                            projection: index
                                .get("Projection")
                                .and_then(|p| p.get("ProjectionType"))
                                .and_then(Yaml::as_str)
                                .unwrap_or("ALL")
                                .to_owned(),
                        })
                    })
                    .collect::<Result<_, TemplateError>>()?;
                let ttl = p.get("TimeToLiveSpecification");
                Ok(TableSpec {
                    logical_id: id.clone(),
                    attributes: pairs(p.get("AttributeDefinitions"), "AttributeName", "AttributeType")?,
                    key_schema: pairs(p.get("KeySchema"), "AttributeName", "KeyType")?,
                    indexes,
                    ttl_attribute: ttl
                        .filter(|t| t.get("Enabled").and_then(Yaml::as_bool).unwrap_or(false))
                        .and_then(|t| t.get("AttributeName"))
                        .and_then(Yaml::as_str)
                        .map(str::to_owned),
                })
            })
            .collect()
    }

    pub fn queues(&self) -> Result<Vec<QueueSpec>, TemplateError> {
        self.of_kind("AWS::SQS::Queue")
            .map(|(id, r)| {
                let p = &r.properties;
                let redrive = match p.get("RedrivePolicy") {
                    None => None,
                    Some(policy) => {
                        let target = policy
                            .get("deadLetterTargetArn")
                            .and_then(|t| match t {
                                Yaml::Tagged(tagged) => tagged.value.as_str().map(str::to_owned),
                                other => other.get("Fn::GetAtt").and_then(|g| match g {
                                    Yaml::Sequence(parts) => {
                                        parts.first().and_then(Yaml::as_str).map(|s| format!("{s}.Arn"))
                                    }
                                    other => other.as_str().map(str::to_owned),
                                }),
                            })
                            .and_then(|s| s.strip_suffix(".Arn").map(str::to_owned))
                            .ok_or_else(|| {
                                invalid(format!("queue {id}: deadLetterTargetArn must be !GetAtt Queue.Arn"))
                            })?;
                        let max_receive = self
                            .number(policy.get("maxReceiveCount"), "maxReceiveCount")?
                            .ok_or_else(|| invalid(format!("queue {id}: maxReceiveCount missing")))?;
                        Some((target, max_receive))
                    }
                };
                Ok(QueueSpec {
                    logical_id: id.clone(),
                    visibility_timeout: self
                        .number(p.get("VisibilityTimeout"), "VisibilityTimeout")?
                        .unwrap_or(30),
                    message_retention: self
                        .number(p.get("MessageRetentionPeriod"), "MessageRetentionPeriod")?
                        .unwrap_or(345_600),
                    redrive,
                })
            })
            .collect()
    }

    pub fn buckets(&self) -> Vec<String> {
        self.of_kind("AWS::S3::Bucket").map(|(id, _)| id.clone()).collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionSpec>, TemplateError> {
        let globals = &self.globals_function;
        self.of_kind("AWS::Serverless::Function")
            .map(|(id, r)| {
                let p = &r.properties;
                let binary = r
                    .metadata
                    .get("BuildProperties")
                    .and_then(|b| b.get("Binary"))
                    .and_then(Yaml::as_str)
                    .ok_or_else(|| invalid(format!("function {id}: Metadata.BuildProperties.Binary missing")))?
                    .to_owned();
                let setting = |name: &str| p.get(name).or_else(|| globals.get(name));
                let mut environment = BTreeMap::new();
                for source in [globals, p] {
                    if let Some(vars) = source
                        .get("Environment")
                        .and_then(|e| e.get("Variables"))
                        .and_then(Yaml::as_mapping)
                    {
                        for (k, v) in vars {
                            let k = k.as_str().ok_or_else(|| invalid("environment names must be strings"))?;
                            environment.insert(k.to_owned(), v.clone());
                        }
                    }
                }
                let mut http_routes = Vec::new();
                let mut sqs_sources = Vec::new();
                let mut schedules = Vec::new();
                for (_, event) in p.get("Events").and_then(Yaml::as_mapping).into_iter().flatten() {
                    let props = event.get("Properties").cloned().unwrap_or(Yaml::Null);
                    match event.get("Type").and_then(Yaml::as_str) {
                        Some("HttpApi") => http_routes.push(HttpRoute {
                            method: props
                                .get("Method")
                                .and_then(Yaml::as_str)
                                .unwrap_or("ANY")
                                .to_uppercase(),
                            path: props
                                .get("Path")
                                .and_then(Yaml::as_str)
                                .ok_or_else(|| invalid(format!("function {id}: HttpApi event without Path")))?
                                .to_owned(),
                        }),
                        Some("SQS") => {
                            let queue = props
                                .get("Queue")
                                .and_then(|q| match q {
                                    Yaml::Tagged(t) => t.value.as_str(),
                                    _ => None,
                                })
                                .and_then(|s| s.strip_suffix(".Arn"))
                                .ok_or_else(|| {
                                    invalid(format!("function {id}: SQS Queue must be !GetAtt Queue.Arn"))
                                })?;
                            let report = props
                                .get("FunctionResponseTypes")
                                .and_then(Yaml::as_sequence)
                                .is_some_and(|types| {
                                    types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                                });
                            sqs_sources.push(SqsSource {
                                queue_logical_id: queue.to_owned(),
                                batch_size: self.number(props.get("BatchSize"), "BatchSize")?.unwrap_or(10),
                                max_concurrency: self
                                    .number(
                                        props.get("ScalingConfig").and_then(|s| s.get("MaximumConcurrency")),
                                        "MaximumConcurrency",
                                    )?
                                    .unwrap_or(2),
                                report_batch_item_failures: report,
                            });
                        }
                        Some("Schedule") => schedules.push(
                            props
                                .get("Schedule")
                                .cloned()
                                .ok_or_else(|| invalid(format!("function {id}: Schedule event without Schedule")))?,
                        ),
                        _ => {}
                    }
                }
                Ok(FunctionSpec {
                    logical_id: id.clone(),
                    binary,
                    timeout_seconds: self.number(setting("Timeout"), "Timeout")?.unwrap_or(3),
                    memory_mb: self.number(setting("MemorySize"), "MemorySize")?.unwrap_or(128),
                    environment,
                    http_routes,
                    sqs_sources,
                    schedules,
                })
            })
            .collect()
    }

    /// The design's rules, checked on every load.
    fn check_rules(&self) -> Result<(), TemplateError> {
        let queues = self.queues()?;
        for function in self.functions()? {
            for source in &function.sqs_sources {
                let queue = queues
                    .iter()
                    .find(|q| q.logical_id == source.queue_logical_id)
                    .ok_or_else(|| {
                        invalid(format!(
                            "{} reads unknown queue {}",
                            function.logical_id, source.queue_logical_id
                        ))
                    })?;
                if queue.visibility_timeout < 6 * function.timeout_seconds {
                    return Err(invalid(format!(
                        "queue {} has VisibilityTimeout {} s, below 6 x {}'s Timeout of {} s",
                        queue.logical_id, queue.visibility_timeout, function.logical_id, function.timeout_seconds
                    )));
                }
                if !source.report_batch_item_failures {
                    return Err(invalid(format!(
                        "{}'s SQS event source must set FunctionResponseTypes: [ReportBatchItemFailures]",
                        function.logical_id
                    )));
                }
                let Some((_, max_receive)) = queue.redrive else {
                    if function.binary == "worker" {
                        return Err(invalid(format!("work queue {} has no RedrivePolicy", queue.logical_id)));
                    }
                    continue;
                };
                let limit = function
                    .environment
                    .get("MAX_ATTEMPTS_LIMIT")
                    .map(|v| self.resolve(v, &NoResources))
                    .transpose()?
                    .and_then(|v| {
                        v.as_str()
                            .and_then(|s| s.parse::<u32>().ok())
                            .or(v.as_u64().map(|n| n as u32))
                    })
                    .unwrap_or(5);
                if limit >= max_receive {
                    return Err(invalid(format!(
                        "MAX_ATTEMPTS_LIMIT {limit} must be below queue {}'s maxReceiveCount {max_receive}",
                        queue.logical_id
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The period of an EventBridge `rate(N unit)` expression. Locally the
/// unit may also be seconds, for tests; `cron(…)` is not run locally.
pub fn rate_period(expression: &str) -> Result<std::time::Duration, TemplateError> {
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| invalid(format!("schedule {expression:?}: only rate(N unit) runs locally")))?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid(format!("schedule {expression:?}: expected rate(N unit)")))?;
    let count: u64 = count
        .parse()
        .map_err(|_| invalid(format!("schedule {expression:?}: {count} is not a number")))?;
    let seconds = match unit.trim().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        other => return Err(invalid(format!("schedule {expression:?}: unknown unit {other}"))),
    };
    Ok(std::time::Duration::from_secs(count.max(1) * seconds))
}

fn scalar_text(value: &Yaml) -> Result<String, TemplateError> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(format!("expected a scalar, got {other:?}"))),
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
