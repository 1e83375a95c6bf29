//! The document against the template and the Rust input types.

use std::collections::BTreeMap;

use super::*;
use crate::template::Template;

const REPO_TEMPLATE: &str = include_str!("../../../../template.yaml");

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
        // A named schema of its own per problem, not an `allOf` over
        // `Problem`: generators (openapi-python-client) type those.
        let reference = problem["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?}: no $ref"));
        let schema = reference.trim_start_matches("#/components/schemas/");
        let named = &document["components"]["schemas"][schema];
        // Every field of a problem body, as `Problem` describes it.
        let fields: Vec<&str> = ["type", "title", "status", "detail", "errors"]
            .into_iter()
            .filter(|field| named["properties"].get(*field).is_none())
            .collect();
        assert!(fields.is_empty(), "{schema}: no {fields:?}");
        assert_eq!(
            named["required"], document["components"]["schemas"]["Problem"]["required"],
            "{schema}"
        );
        let status = named["properties"]["status"]["const"].as_u64();
        assert!(
            status.is_some_and(|s| (400..600).contains(&s)),
            "{schema}: status {status:?}"
        );
        let kind = &named["properties"]["type"];
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

/// The schema a `#/components/schemas/<name>` reference names.
fn referenced<'a>(document: &'a Yaml, reference: &Yaml) -> &'a Yaml {
    let name = reference
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a schema reference: {reference:?}"));
    &document["components"]["schemas"][name]
}

/// A schema's property names and its required ones.
fn fields(schema: &Yaml) -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |value: Option<&Yaml>| -> BTreeSet<String> {
        match value {
            Some(Yaml::Mapping(map)) => map.keys().filter_map(Yaml::as_str).map(str::to_owned).collect(),
            Some(Yaml::Sequence(items)) => items.iter().filter_map(Yaml::as_str).map(str::to_owned).collect(),
            _ => BTreeSet::new(),
        }
    };
    (names(schema.get("properties")), names(schema.get("required")))
}

/// An app's own job type, as a test registers it.
mod app {
    use longrun_core::job_types::{JobContext, JsonSchema, TypedJob};
    use longrun_core::record::{JobError, ResultObject};
    use serde::Deserialize;

    /// The input of a word count.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub(super) struct CountInput {
        /// The text whose words are counted.
        pub text: String,
        /// How many times over.
        #[serde(default)]
        pub repeat: Option<u32>,
    }

    pub(super) struct WordCount;

    #[async_trait::async_trait]
    impl TypedJob for WordCount {
        type Input = CountInput;
        type Checkpoint = ();

        fn job_type(&self) -> &'static str {
            "word-count"
        }

        async fn run(&self, _: &JobContext, _: CountInput, _: Option<()>) -> Result<Vec<ResultObject>, JobError> {
            Ok(Vec::new())
        }
    }
}

#[test]
fn an_apps_own_job_type_is_in_the_submit_union_with_its_input_schema_from_its_rust_type() {
    let mut registry = Registry::default();
    registry.register(std::sync::Arc::new(app::WordCount));
    let document = document_for(&registry);
    let submit = &document["components"]["schemas"]["SubmitRequest"];
    let reference = Yaml::from("#/components/schemas/WordCountJobRequest");
    assert_eq!(
        submit["oneOf"],
        Yaml::Sequence(vec![yaml_map([("$ref", reference.clone())])])
    );
    assert_eq!(submit["discriminator"]["mapping"]["word-count"], reference);
    let request = referenced(&document, &reference);
    assert_eq!(request["properties"]["type"]["const"], Yaml::from("word-count"));
    assert_eq!(
        fields(request),
        fields(&document["components"]["schemas"][MODEL_REQUEST]),
        "the same request fields as every job type"
    );
    let input = referenced(&document, &request["properties"]["input"]["$ref"]);
    let expected = (
        ["repeat", "text"].map(String::from).into_iter().collect(),
        ["text"].map(String::from).into_iter().collect(),
    );
    assert_eq!(fields(input), expected);
    assert_eq!(input["additionalProperties"], Yaml::Bool(false));
    assert_eq!(
        input["properties"]["text"]["description"],
        Yaml::from("The text whose words are counted.")
    );
}

#[test]
fn the_submit_union_is_the_registrys_job_types_and_no_other() {
    let config = longrun_core::fixtures::config(&[("ENABLE_SLEEP_JOB", "false")]);
    let document = document_for(&longrun_jobs::standard(&config));
    let mapping = document["components"]["schemas"]["SubmitRequest"]["discriminator"]["mapping"]
        .as_mapping()
        .unwrap();
    let types: Vec<&str> = mapping.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(types, ["report", "thumbnail"], "sleep is not run here, so not offered");
    assert_eq!(
        document["components"]["schemas"]["SubmitRequest"]["oneOf"]
            .as_sequence()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn longruns_own_input_schemas_have_exactly_the_fields_of_their_rust_types() {
    let registry = longrun_jobs::standard(&longrun_core::fixtures::config(&[]));
    let document = document();
    let mapping = document["components"]["schemas"]["SubmitRequest"]["discriminator"]["mapping"]
        .as_mapping()
        .unwrap();
    assert_eq!(mapping.len(), registry.job_types().len());
    for job_type in registry.job_types() {
        let request = referenced(&document, &mapping[job_type]);
        let written = referenced(&document, &request["properties"]["input"]["$ref"]);
        let derived: Yaml = serde_yaml::to_value(registry.get(job_type).unwrap().input_schema()).unwrap();
        assert_eq!(
            fields(written),
            fields(&derived),
            "{job_type}: docs/openapi.yaml and its Rust input type"
        );
        assert_eq!(
            (&written["additionalProperties"], &derived["additionalProperties"]),
            (&Yaml::Bool(false), &Yaml::Bool(false)),
            "{job_type}: unknown fields refused in both"
        );
    }
}

#[test]
fn every_problem_answer_says_the_status_it_is_sent_with() {
    let document = document();
    let mut checked = 0;
    for (method, path) in operations(&document) {
        let operation = &document["paths"][path.as_str()][method.to_ascii_lowercase().as_str()];
        for (code, response) in operation["responses"].as_mapping().into_iter().flatten() {
            let Some(name) = response["$ref"]
                .as_str()
                .map(|r| r.trim_start_matches("#/components/responses/"))
            else {
                continue;
            };
            let schema = &document["components"]["responses"][name]["content"]["application/problem+json"]["schema"];
            let Some(schema) = schema["$ref"]
                .as_str()
                .map(|r| r.trim_start_matches("#/components/schemas/"))
            else {
                continue;
            };
            let status = document["components"]["schemas"][schema]["properties"]["status"]["const"].as_u64();
            let code = code.as_str().and_then(|c| c.parse::<u64>().ok());
            assert_eq!(status, code, "{method} {path}: {name} ({schema})");
            checked += 1;
        }
    }
    assert!(checked > 20, "problem answers checked: {checked}");
}
