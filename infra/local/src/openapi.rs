//! The API contract: `docs/openapi.yaml`, an OpenAPI 3.1 document of every
//! `HttpApi` route of `template.yaml`, embedded in the binary so the local
//! runtime serves it at `GET /openapi.yaml` (and fuzzers read it there).
//! Its tests keep the document's operations and the template's routes the
//! same set.

use std::collections::BTreeSet;

use serde_yaml::Value as Yaml;

/// The document's text, as committed.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.yaml");

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::template::Template;

    const REPO_TEMPLATE: &str = include_str!("../../../template.yaml");

    fn document() -> Yaml {
        serde_yaml::from_str(DOCUMENT).expect("docs/openapi.yaml is YAML")
    }

    fn template_routes() -> BTreeSet<(String, String)> {
        let template = Template::parse(REPO_TEMPLATE, "longrun-openapi-test", &BTreeMap::new()).unwrap();
        template
            .functions()
            .unwrap()
            .into_iter()
            .flat_map(|function| function.http_routes)
            .map(|route| (route.method.to_ascii_uppercase(), route.path))
            .collect()
    }

    #[test]
    fn the_document_is_openapi_3_1_with_bearer_auth_on_every_operation() {
        let document = document();
        let version = document["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.1."), "openapi: {version:?}");
        let scheme = &document["components"]["securitySchemes"]["bearerAuth"];
        assert_eq!(
            (scheme["type"].as_str(), scheme["scheme"].as_str()),
            (Some("http"), Some("bearer"))
        );
        assert_eq!(
            document["security"][0]["bearerAuth"],
            Yaml::Sequence(Vec::new()),
            "bearer auth applies to every operation"
        );
    }

    #[test]
    fn the_document_has_exactly_the_templates_http_routes() {
        let documented = operations(&document());
        let routed = template_routes();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes of template.yaml missing from docs/openapi.yaml: {undocumented:?}; \
             operations of docs/openapi.yaml no HttpApi route serves: {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_documents_401_and_every_problem_its_urn() {
        let document = document();
        for (method, path) in operations(&document) {
            let operation = &document["paths"][path.as_str()][method.to_ascii_lowercase().as_str()];
            assert!(
                operation["responses"].get("401").is_some(),
                "{method} {path} does not document 401"
            );
            assert!(
                operation["operationId"].as_str().is_some(),
                "{method} {path} has no operationId"
            );
        }
        let responses = document["components"]["responses"].as_mapping().unwrap();
        for (name, response) in responses {
            let Some(problem) = response["content"].get("application/problem+json") else {
                continue;
            };
            let kind = &problem["schema"]["allOf"][1]["properties"]["type"];
            let urns: Vec<&str> = match kind.get("const") {
                Some(one) => one.as_str().into_iter().collect(),
                None => kind["enum"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(Yaml::as_str)
                    .collect(),
            };
            assert!(
                !urns.is_empty() && urns.iter().all(|urn| urn.starts_with("urn:longrun:problem:")),
                "{name:?}: {urns:?}"
            );
        }
    }

    #[test]
    fn operations_are_read_from_path_items() {
        let document: Yaml = serde_yaml::from_str(
            "paths:\n  /a:\n    get: {}\n    parameters: []\n  /a/{id}:\n    post: {}\n    delete: {}\n",
        )
        .unwrap();
        let expected = [("GET", "/a"), ("DELETE", "/a/{id}"), ("POST", "/a/{id}")]
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .into_iter()
            .collect::<BTreeSet<_>>();
        assert_eq!(operations(&document), expected);
    }
}
