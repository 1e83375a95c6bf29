//! Resolves CloudFormation intrinsics in template values: `!Ref`, `!GetAtt`,
//! `!Sub`, `!Split`, and `!If` over the template's `Conditions` (`!Equals`, `!Not`)
//! (and their long forms `Ref`, `Fn::GetAtt`, …) against the template's
//! parameters, the pseudo parameters (`AWS::NoValue` resolves to null) and,
//! through [`ResourceLookup`], the resources created locally.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::{invalid, Template, TemplateError};

/// What `!Ref` and `!GetAtt` resolve to for created resources.
pub trait ResourceLookup {
    /// What `!Ref LogicalId` resolves to: a table name, queue URL, bucket name.
    fn reference(&self, logical_id: &str) -> Option<String>;
    /// What `!GetAtt LogicalId.Attribute` resolves to.
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String>;
    /// What `AWS::Region` resolves to.
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

impl Template {
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

    /// Resolves a value that may hold intrinsics into a whole number
    /// (`None` when the setting is absent).
    pub(super) fn number(&self, value: Option<&Yaml>, what: &str) -> Result<Option<u32>, TemplateError> {
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

    /// One intrinsic function, by its short name (`Ref`, `GetAtt`, `Sub`).
    fn intrinsic(&self, name: &str, arg: &Yaml, lookup: &dyn ResourceLookup) -> Result<Json, TemplateError> {
        let text = |v: &Yaml| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{name} takes a string")))
        };
        match name {
            "Ref" if arg.as_str() == Some("AWS::NoValue") => Ok(Json::Null),
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
            "If" => {
                let Some([condition, then, otherwise]) = arg.as_sequence().map(Vec::as_slice) else {
                    return Err(invalid("If takes [condition, value if true, value if false]"));
                };
                let chosen = if self.condition(&text(condition)?, lookup)? {
                    then
                } else {
                    otherwise
                };
                self.resolve(chosen, lookup)
            }
            "Split" => {
                let Some([delimiter, source]) = arg.as_sequence().map(Vec::as_slice) else {
                    return Err(invalid("Split takes [delimiter, text]"));
                };
                let delimiter = text(delimiter)?;
                let source = match self.resolve(source, lookup)? {
                    Json::String(s) => s,
                    other => return Err(invalid(format!("Split of a non-text {other}"))),
                };
                Ok(Json::Array(
                    source
                        .split(delimiter.as_str())
                        .map(|part| Json::String(part.to_owned()))
                        .collect(),
                ))
            }
            "Equals" => {
                let Some([a, b]) = arg.as_sequence().map(Vec::as_slice) else {
                    return Err(invalid("Equals takes two values"));
                };
                // As CloudFormation: parameters are strings, so `0` equals "0".
                let text = |value: Json| match value {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                Ok(Json::Bool(
                    text(self.resolve(a, lookup)?) == text(self.resolve(b, lookup)?),
                ))
            }
            "Not" => {
                let Some([inner]) = arg.as_sequence().map(Vec::as_slice) else {
                    return Err(invalid("Not takes one condition"));
                };
                match self.resolve(inner, lookup)? {
                    Json::Bool(b) => Ok(Json::Bool(!b)),
                    other => Err(invalid(format!("Not of a non-condition {other}"))),
                }
            }
            other => Err(invalid(format!(
                "intrinsic {other} is not supported by the local runtime"
            ))),
        }
    }

    /// What `Ref name` resolves to: a parameter, a pseudo parameter or a created resource.
    /// The value of the template's condition `name`.
    fn condition(&self, name: &str, lookup: &dyn ResourceLookup) -> Result<bool, TemplateError> {
        let body = self
            .conditions
            .get(name)
            .ok_or_else(|| invalid(format!("If names an unknown condition {name}")))?;
        match self.resolve(body, lookup)? {
            Json::Bool(value) => Ok(value),
            other => Err(invalid(format!("condition {name} is not a boolean: {other}"))),
        }
    }

    fn reference(&self, name: &str, lookup: &dyn ResourceLookup) -> Result<String, TemplateError> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        if self.unset_parameters.contains(name) {
            return Err(invalid(format!(
                "parameter {name} has no Default: pass it with --parameter-overrides"
            )));
        }
        match name {
            "AWS::Region" => return Ok(lookup.region()),
            "AWS::AccountId" => return Ok("123456789012".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::StackName" => return Ok(self.stack_name.clone()),
            _ => {}
        }
        lookup
            .reference(name)
            .ok_or_else(|| invalid(format!("Ref {name} does not resolve (unknown, or not created locally)")))
    }
}
