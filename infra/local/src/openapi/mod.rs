//! The API contract: `docs/openapi.yaml`, an OpenAPI 3.1 document of every
//! `HttpApi` route of `template.yaml`, embedded in the binary. The local
//! runtime serves it at `GET /openapi.yaml` (fuzzers read it there) for the
//! app's own registry ([`document_for`]): the submit body's union of job
//! types is the registry's, and a job type the document does not describe
//! (an app's own) gets its request and input schema there, the input's
//! derived from its Rust type. Its tests keep the document's operations and
//! the template's routes the same set, and longrun's own input schemas in
//! step with their Rust types.

use std::collections::BTreeSet;

use longrun_core::job_types::Registry;
use serde_yaml::{Mapping, Value as Yaml};

/// The document's text, as committed.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.yaml");

/// The media type the document is served as.
pub const MEDIA_TYPE: &str = "application/yaml";

/// The HTTP methods an OpenAPI path item may hold operations for.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every operation of an OpenAPI document as (upper-case method, path
/// template), e.g. `("GET", "/jobs/{id}")`.
pub fn operations(document: &Yaml) -> BTreeSet<(String, String)> {
    let Some(paths) = document.get("paths").and_then(Yaml::as_mapping) else {
        return BTreeSet::new();
    };
    paths
        .iter()
        .filter_map(|(path, item)| Some((path.as_str()?, item.as_mapping()?)))
        .flat_map(|(path, item)| {
            item.keys()
                .filter_map(Yaml::as_str)
                .filter(|key| METHODS.contains(key))
                .map(move |method| (method.to_ascii_uppercase(), path.to_owned()))
        })
        .collect()
}

/// The request schema a job type's own request schema is made from: every
/// job request has the same fields but `type` and `input`.
const MODEL_REQUEST: &str = "ReportJobRequest";

/// The document for an app that runs `registry`: [`DOCUMENT`] with the
/// submit body's job types (`SubmitRequest`'s `oneOf` and discriminator)
/// exactly the registry's. A type the document describes keeps its
/// hand-written schemas; any other gets `<Name>JobRequest` and
/// `<Name>Input`, the input being its handler's
/// [`input_schema`](longrun_core::job_types::JobHandler::input_schema).
pub fn document_for(registry: &Registry) -> Yaml {
    let mut document: Yaml = serde_yaml::from_str(DOCUMENT).expect("docs/openapi.yaml is YAML");
    let schemas = document["components"]["schemas"]
        .as_mapping_mut()
        .expect("the document has components.schemas");
    let documented = schemas["SubmitRequest"]["discriminator"]["mapping"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    let model = schemas[MODEL_REQUEST].clone();
    let mut union = Vec::new();
    let mut mapping = Mapping::new();
    for job_type in registry.job_types() {
        let reference = match documented.get(job_type) {
            Some(reference) => reference.clone(),
            None => {
                let name = schema_name(job_type);
                let input = registry
                    .get(job_type)
                    .map(|handler| handler.input_schema())
                    .unwrap_or_default();
                let input = serde_yaml::to_value(input).unwrap_or(Yaml::Null);
                schemas.insert(format!("{name}Input").into(), input);
                let mut request = model.clone();
                request["description"] = format!("A `{job_type}` job: a job type of this app's own.").into();
                request["properties"]["type"] = yaml_map([("const", job_type.into())]);
                request["properties"]["input"] =
                    yaml_map([("$ref", format!("#/components/schemas/{name}Input").into())]);
                schemas.insert(format!("{name}JobRequest").into(), request);
                format!("#/components/schemas/{name}JobRequest").into()
            }
        };
        union.push(yaml_map([("$ref", reference.clone())]));
        mapping.insert(job_type.into(), reference);
    }
    let submit = &mut schemas["SubmitRequest"];
    submit["oneOf"] = Yaml::Sequence(union);
    submit["discriminator"]["mapping"] = Yaml::Mapping(mapping);
    document
}

/// `activity-report` → `ActivityReport`: a job type as a schema name.
fn schema_name(job_type: &str) -> String {
    job_type
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

/// A YAML mapping of `entries`, in order.
fn yaml_map<const N: usize>(entries: [(&str, Yaml); N]) -> Yaml {
    Yaml::Mapping(entries.into_iter().map(|(k, v)| (Yaml::from(k), v)).collect())
}

#[cfg(test)]
mod tests;
