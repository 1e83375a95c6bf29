//! Reads `template.yaml`, the single source of truth, into what the local
//! runtime needs: parameters (with overrides), tables, queues, buckets and
//! functions with their routes, SQS event sources, timeouts and environment.
//!
//! This module loads the template and settles its parameters; the rest is
//! split by job: `intrinsics` resolves `!Ref`, `!GetAtt`, `!Sub` and their
//! long forms against parameters and the resources created locally, `specs`
//! reads the resources into the specs the runtime creates and runs, and
//! `rules` enforces, on every load, the design's rules a template could
//! break (visibility timeout ≥ 6 × the worker's timeout, max attempts below
//! maxReceiveCount, …).

mod intrinsics;
mod rules;
mod specs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

pub use intrinsics::{NoResources, ResourceLookup};
pub use specs::{rate_period, FunctionSpec, HttpApiSpec, HttpRoute, IndexSpec, QueueSpec, SqsSource, TableSpec};

/// Why a template cannot be loaded or a value of it cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    /// The template could not be read.
    Io(#[from] std::io::Error),
    #[error("the template is not valid YAML: {0}")]
    /// It is not YAML.
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    /// It is YAML but not a template this runtime can play.
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(message.into())
}

/// The template, loaded for one stack and with parameters settled.
#[derive(Clone, Debug)]
pub struct Template {
    /// The parameters' values: defaults, then overrides.
    pub parameters: BTreeMap<String, String>,
    /// Declared parameters with no `Default` and no override (e.g. the JWT
    /// issuer, which only AWS needs): loading succeeds, resolving one fails.
    unset_parameters: BTreeSet<String>,
    /// The stack it is deployed as: what `AWS::StackName` resolves to.
    stack_name: String,
    resources: BTreeMap<String, Resource>,
    globals_function: Yaml,
    /// `Conditions`, unresolved: what `!If` evaluates.
    conditions: BTreeMap<String, Yaml>,
}

/// One entry of `Resources`, unresolved.
#[derive(Clone, Debug)]
struct Resource {
    kind: String,
    properties: Yaml,
    metadata: Yaml,
}

impl Template {
    /// Reads and parses the template file; see [`Template::parse`].
    pub fn load(path: &Path, stack_name: &str, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?, stack_name, overrides)
    }

    /// Parses template text for the stack `stack_name` (like `sam deploy
    /// --stack-name`); `overrides` set parameters like `sam deploy --parameter-overrides`.
    pub fn parse(text: &str, stack_name: &str, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let root: Yaml = serde_yaml::from_str(text)?;
        let mut parameters = BTreeMap::new();
        let mut unset_parameters = BTreeSet::new();
        if let Some(declared) = root.get("Parameters").and_then(Yaml::as_mapping) {
            for (name, spec) in declared {
                let name = name
                    .as_str()
                    .ok_or_else(|| invalid("parameter names must be strings"))?;
                let value = match overrides.get(name) {
                    Some(value) => value.clone(),
                    None => match spec.get("Default").map(scalar_text).transpose()? {
                        Some(default) => default,
                        None => {
                            unset_parameters.insert(name.to_owned());
                            continue;
                        }
                    },
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
        if let Some(unknown) = overrides
            .keys()
            .find(|k| !parameters.contains_key(*k) && !unset_parameters.contains(*k))
        {
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
        let conditions = root
            .get("Conditions")
            .and_then(Yaml::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(name, body)| Some((name.as_str()?.to_owned(), body.clone())))
            .collect();
        let template = Template {
            parameters,
            unset_parameters,
            stack_name: stack_name.to_owned(),
            resources,
            globals_function,
            conditions,
        };
        template.check_rules()?;
        Ok(template)
    }

    /// The CORS blocks, resolved: the first HTTP API's `CorsConfiguration`,
    /// and per function with a URL its `FunctionUrlConfig.Cors` (logical id
    /// → block). Null where there is none (or it is `AWS::NoValue`).
    pub fn cors_blocks(&self, lookup: &dyn ResourceLookup) -> Result<(Json, BTreeMap<String, Json>), TemplateError> {
        let none = Yaml::Null;
        let api = match self.of_kind("AWS::Serverless::HttpApi").next() {
            Some((_, api)) => self.resolve(api.properties.get("CorsConfiguration").unwrap_or(&none), lookup)?,
            None => Json::Null,
        };
        let mut urls = BTreeMap::new();
        for (id, function) in self.of_kind("AWS::Serverless::Function") {
            if let Some(url) = function.properties.get("FunctionUrlConfig") {
                urls.insert(id.clone(), self.resolve(url.get("Cors").unwrap_or(&none), lookup)?);
            }
        }
        Ok((api, urls))
    }

    /// The resources of one CloudFormation type, by logical id.
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }
}

/// A parameter's `Default` or `AllowedValues` entry as text.
fn scalar_text(value: &Yaml) -> Result<String, TemplateError> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(format!("expected a scalar, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests;
