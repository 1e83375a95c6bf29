//! The resource specs the local runtime creates and runs (tables, queues,
//! functions with their HTTP routes, SQS event sources and schedules), read
//! from the template's `Resources`, and the `rate()` schedule expressions of
//! those functions turned into periods.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::{invalid, Template, TemplateError};

/// A DynamoDB table to create.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// The logical id in the template.
    pub logical_id: String,
    /// `(name, S|N|B)`.
    pub attributes: Vec<(String, String)>,
    /// `(name, HASH|RANGE)`.
    pub key_schema: Vec<(String, String)>,
    /// Its global secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// The attribute its TTL reads, if any.
    pub ttl_attribute: Option<String>,
}

/// A global secondary index of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexSpec {
    /// The index name.
    pub name: String,
    /// (attribute, HASH or RANGE), in order.
    pub key_schema: Vec<(String, String)>,
    /// Its projection type.
    pub projection: String,
}

/// An SQS queue to create.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSpec {
    /// The logical id in the template.
    pub logical_id: String,
    /// Seconds a received message stays invisible.
    pub visibility_timeout: u32,
    /// Seconds a message is kept.
    pub message_retention: u32,
    /// The dead-letter queue's logical id and maxReceiveCount.
    pub redrive: Option<(String, u32)>,
}

/// An HTTP route of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    /// The HTTP method, upper case (`ANY` when the event names none).
    pub method: String,
    /// The path template, e.g. `/jobs/{id}`.
    pub path: String,
    /// The route's own `Auth.Authorizer`, overriding the API's default
    /// (`NONE` would open the route).
    pub authorizer: Option<String>,
}

/// An HTTP API (`AWS::Serverless::HttpApi`) and how it authenticates callers.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpApiSpec {
    /// Its logical id.
    pub logical_id: String,
    /// `Auth.DefaultAuthorizer`: the authorizer every route uses unless it names its own.
    pub default_authorizer: Option<String>,
    /// `Auth.Authorizers`: name → whether it is a JWT authorizer whose issuer
    /// and audience are both set.
    pub authorizers: BTreeMap<String, bool>,
}

/// An SQS event source mapping of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct SqsSource {
    /// The queue's logical id.
    pub queue_logical_id: String,
    /// Messages per invocation at most.
    pub batch_size: u32,
    /// Invocations at once at most.
    pub max_concurrency: u32,
    /// Whether the function answers which messages failed.
    pub report_batch_item_failures: bool,
}

/// A Lambda function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    /// The logical id in the template.
    pub logical_id: String,
    /// The cargo binary it is built from (`Metadata.BuildProperties.Binary`):
    /// `bootstrap` for every function of longrun's template.
    pub binary: String,
    /// The function the binary plays here: its `LONGRUN_FUNCTION` (`submit`,
    /// `worker`, …), a plain string in its own environment.
    pub function: String,
    /// Its timeout.
    pub timeout_seconds: u32,
    /// Its memory size.
    pub memory_mb: u32,
    /// Environment variables, unresolved (they may name resources).
    pub environment: BTreeMap<String, Yaml>,
    /// The HttpApi routes it serves.
    pub http_routes: Vec<HttpRoute>,
    /// The queues that feed it.
    pub sqs_sources: Vec<SqsSource>,
    /// Schedule expressions of `Schedule` events, unresolved.
    pub schedules: Vec<Yaml>,
    /// `FunctionUrlConfig.InvokeMode` when the function has a URL
    /// (`BUFFERED` unless given).
    pub function_url: Option<String>,
    /// `ReservedConcurrentExecutions`: how many invocations may run at once
    /// (`None`: no reservation, unbounded here).
    pub reserved_concurrency: Option<u32>,
}

impl Template {
    /// The DynamoDB tables (`AWS::DynamoDB::Table`).
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

    /// The SQS queues (`AWS::SQS::Queue`), with their redrive policies.
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

    /// The HTTP APIs (`AWS::Serverless::HttpApi`) and their authorizers.
    pub fn http_apis(&self) -> Vec<HttpApiSpec> {
        self.of_kind("AWS::Serverless::HttpApi")
            .map(|(id, r)| {
                let auth = r.properties.get("Auth");
                let authorizers = auth
                    .and_then(|a| a.get("Authorizers"))
                    .and_then(Yaml::as_mapping)
                    .into_iter()
                    .flatten()
                    .filter_map(|(name, spec)| {
                        let jwt = spec.get("JwtConfiguration");
                        let complete = jwt.is_some_and(|j| {
                            !j.get("issuer").unwrap_or(&Yaml::Null).is_null()
                                && !j.get("audience").unwrap_or(&Yaml::Null).is_null()
                        });
                        Some((name.as_str()?.to_owned(), complete))
                    })
                    .collect();
                HttpApiSpec {
                    logical_id: id.clone(),
                    default_authorizer: auth
                        .and_then(|a| a.get("DefaultAuthorizer"))
                        .and_then(Yaml::as_str)
                        .map(str::to_owned),
                    authorizers,
                }
            })
            .collect()
    }

    /// The issuer and audiences of the first HTTP API's default JWT
    /// authorizer, resolved (parameters and all): what the local runtime
    /// checks tokens against when it verifies them. `None` when there is
    /// no such authorizer.
    pub fn default_jwt_authorizer(
        &self,
        lookup: &dyn super::intrinsics::ResourceLookup,
    ) -> Result<Option<(String, Vec<String>)>, TemplateError> {
        let Some((_, api)) = self.of_kind("AWS::Serverless::HttpApi").next() else {
            return Ok(None);
        };
        let auth = api.properties.get("Auth");
        let Some(name) = auth.and_then(|a| a.get("DefaultAuthorizer")).and_then(Yaml::as_str) else {
            return Ok(None);
        };
        let Some(jwt) = auth
            .and_then(|a| a.get("Authorizers"))
            .and_then(|a| a.get(name))
            .and_then(|a| a.get("JwtConfiguration"))
        else {
            return Ok(None);
        };
        let issuer = self.resolve(jwt.get("issuer").unwrap_or(&Yaml::Null), lookup)?;
        let audiences = self.resolve(jwt.get("audience").unwrap_or(&Yaml::Null), lookup)?;
        let issuer = issuer
            .as_str()
            .ok_or_else(|| invalid(format!("authorizer {name}: issuer is not text")))?
            .to_owned();
        let audiences = audiences
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        Ok(Some((issuer, audiences)))
    }

    /// The logical ids of the S3 buckets (`AWS::S3::Bucket`).
    pub fn buckets(&self) -> Vec<String> {
        self.of_kind("AWS::S3::Bucket").map(|(id, _)| id.clone()).collect()
    }

    /// The Lambda functions (`AWS::Serverless::Function`), with `Globals.Function` applied.
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
                let function = environment
                    .get("LONGRUN_FUNCTION")
                    .and_then(Yaml::as_str)
                    .ok_or_else(|| {
                        invalid(format!(
                            "function {id}: Environment LONGRUN_FUNCTION missing or not a string"
                        ))
                    })?
                    .to_owned();
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
                            authorizer: props
                                .get("Auth")
                                .and_then(|auth| auth.get("Authorizer"))
                                .and_then(Yaml::as_str)
                                .map(str::to_owned),
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
                    function,
                    timeout_seconds: self.number(setting("Timeout"), "Timeout")?.unwrap_or(3),
                    memory_mb: self.number(setting("MemorySize"), "MemorySize")?.unwrap_or(128),
                    environment,
                    http_routes,
                    sqs_sources,
                    schedules,
                    function_url: p.get("FunctionUrlConfig").map(|url| {
                        url.get("InvokeMode")
                            .and_then(Yaml::as_str)
                            .unwrap_or("BUFFERED")
                            .to_owned()
                    }),
                    reserved_concurrency: match p.get("ReservedConcurrentExecutions") {
                        None => None,
                        Some(value) => match self.resolve(value, &super::NoResources)? {
                            Json::Null => None,
                            other => Some(
                                other
                                    .as_u64()
                                    .or_else(|| other.as_str().and_then(|s| s.parse().ok()))
                                    .and_then(|n| u32::try_from(n).ok())
                                    .ok_or_else(|| {
                                        invalid(format!("function {id}: ReservedConcurrentExecutions {other}"))
                                    })?,
                            ),
                        },
                    },
                })
            })
            .collect()
    }
}

/// The period of an EventBridge `rate(N unit)` expression. Locally the
/// unit may also be seconds, for tests; `cron(…)` is not run locally.
pub fn rate_period(expression: &str) -> Result<Duration, TemplateError> {
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
    Ok(Duration::from_secs(count.max(1) * seconds))
}
