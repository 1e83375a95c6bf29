//! Tests of the template loader, on the repository's own `template.yaml`.

use super::*;

const REPO_TEMPLATE: &str = include_str!("../../../../template.yaml");

/// Not the local runtime's default stack name, so resolving it proves it was passed on.
const STACK: &str = "longrun-test-42";

fn load(overrides: &[(&str, &str)]) -> Result<Template, TemplateError> {
    let overrides = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Template::parse(REPO_TEMPLATE, STACK, &overrides)
}

struct FakeResources;

impl ResourceLookup for FakeResources {
    fn reference(&self, id: &str) -> Option<String> {
        Some(format!("ref-of-{id}"))
    }
    fn attribute(&self, id: &str, attribute: &str) -> Option<String> {
        Some(format!("{attribute}-of-{id}"))
    }
    fn region(&self) -> String {
        "eu-west-1".into()
    }
}

#[test]
fn the_jobs_table_has_the_owner_and_sparse_due_indexes_and_ttl() {
    let template = load(&[]).unwrap();
    let tables = template.tables().unwrap();
    assert_eq!(tables.len(), 1);
    let table = &tables[0];
    assert_eq!(table.key_schema, [("pk".to_owned(), "HASH".to_owned())]);
    let indexes: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(indexes, ["by-owner-shard", "by-owner", "due"]);
    assert_eq!(table.indexes[0].key_schema[0].0, "owner_shard");
    assert_eq!(table.indexes[2].key_schema[0].0, "due_shard");
    assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
}

#[test]
fn work_queues_redrive_to_their_dead_letter_queues() {
    let queues = load(&[]).unwrap().queues().unwrap();
    let fast = queues.iter().find(|q| q.logical_id == "FastQueue").unwrap();
    assert_eq!(fast.redrive, Some(("FastDeadLetterQueue".to_owned(), 6)));
    assert_eq!(fast.visibility_timeout, 360);
    let slow = queues.iter().find(|q| q.logical_id == "SlowQueue").unwrap();
    assert_eq!(slow.redrive, Some(("SlowDeadLetterQueue".to_owned(), 6)));
    let webhooks = queues.iter().find(|q| q.logical_id == "WebhookQueue").unwrap();
    assert_eq!(webhooks.redrive, Some(("WebhookDeadLetterQueue".to_owned(), 6)));
    assert_eq!(queues.iter().filter(|q| q.redrive.is_none()).count(), 3);
}

#[test]
fn functions_carry_routes_event_sources_and_timeouts() {
    let functions = load(&[]).unwrap().functions().unwrap();
    let by_id = |id: &str| functions.iter().find(|f| f.logical_id == id).unwrap();
    let submit = by_id("SubmitFunction");
    assert_eq!(
        (submit.binary.as_str(), submit.function.as_str()),
        ("bootstrap", "submit")
    );
    let routes: Vec<(&str, &str)> = submit
        .http_routes
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("POST", "/jobs"),
            ("POST", "/uploads"),
            ("POST", "/webhook-secret"),
            ("POST", "/schedules"),
            ("GET", "/schedules"),
            ("GET", "/schedules/{id}"),
            ("PATCH", "/schedules/{id}"),
            ("DELETE", "/schedules/{id}"),
        ]
    );
    assert!(submit.http_routes.iter().all(|r| r.authorizer.is_none()));
    let webhook = by_id("WebhookFunction");
    assert_eq!(
        (webhook.binary.as_str(), webhook.function.as_str()),
        ("bootstrap", "webhook")
    );
    assert_eq!(webhook.sqs_sources[0].queue_logical_id, "WebhookQueue");
    assert!(webhook.sqs_sources[0].report_batch_item_failures);
    assert_eq!(submit.timeout_seconds, 10, "from Globals");
    assert_eq!(by_id("StatusFunction").http_routes[0].path, "/jobs/{id}");
    let fast = by_id("FastWorkerFunction");
    assert_eq!(fast.timeout_seconds, 60);
    assert_eq!(
        fast.sqs_sources,
        [SqsSource {
            queue_logical_id: "FastQueue".into(),
            batch_size: 5,
            max_concurrency: 10,
            report_batch_item_failures: true,
        }]
    );
    assert!(
        fast.environment.contains_key("QUEUE_URLS"),
        "globals environment merged"
    );
    let dead_letter = by_id("DeadLetterFunction");
    let dlqs: Vec<&str> = dead_letter
        .sqs_sources
        .iter()
        .map(|s| s.queue_logical_id.as_str())
        .collect();
    assert_eq!(dlqs, ["FastDeadLetterQueue", "SlowDeadLetterQueue"]);
    assert_eq!(by_id("CancelFunction").http_routes[0].path, "/jobs/{id}/cancel");
    assert_eq!(by_id("ReconcilerFunction").schedules.len(), 1);
}

#[test]
fn schedules_resolve_to_periods() {
    let template = load(&[("ReconcilerSchedule", "rate(2 seconds)")]).unwrap();
    let functions = template.functions().unwrap();
    let reconciler = functions.iter().find(|f| f.logical_id == "ReconcilerFunction").unwrap();
    let expression = template.resolve(&reconciler.schedules[0], &NoResources).unwrap();
    assert_eq!(
        rate_period(expression.as_str().unwrap()).unwrap(),
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        rate_period("rate(1 minute)").unwrap(),
        std::time::Duration::from_secs(60)
    );
    assert_eq!(
        rate_period("rate(5 hours)").unwrap(),
        std::time::Duration::from_secs(18_000)
    );
    assert!(rate_period("cron(0 * * * ? *)").is_err());
    assert!(rate_period("rate(often)").is_err());
}

#[test]
fn parameter_overrides_change_the_local_stack() {
    let template = load(&[
        ("FastWorkerTimeout", "5"),
        ("FastQueueVisibilityTimeout", "30"),
        ("FastWorkerBatchSize", "2"),
        ("MaxReceiveCount", "4"),
        ("MaxAttemptsLimit", "3"),
    ])
    .unwrap();
    let fast_queue = template
        .queues()
        .unwrap()
        .into_iter()
        .find(|q| q.logical_id == "FastQueue")
        .unwrap();
    assert_eq!(fast_queue.visibility_timeout, 30);
    assert_eq!(fast_queue.redrive.unwrap().1, 4);
    let fast = template
        .functions()
        .unwrap()
        .into_iter()
        .find(|f| f.logical_id == "FastWorkerFunction")
        .unwrap();
    assert_eq!((fast.timeout_seconds, fast.sqs_sources[0].batch_size), (5, 2));
}

#[test]
fn templates_that_break_the_design_rules_are_refused() {
    let short_visibility = load(&[("FastQueueVisibilityTimeout", "359")]).unwrap_err();
    assert!(short_visibility.to_string().contains("below 6 x"), "{short_visibility}");
    let attempts = load(&[("MaxAttemptsLimit", "6")]).unwrap_err();
    assert!(attempts.to_string().contains("maxReceiveCount"), "{attempts}");
    assert!(load(&[("NoSuchParameter", "1")]).is_err());
    assert!(load(&[("EnableSleepJob", "maybe")]).is_err());
}

#[test]
fn intrinsics_resolve_against_parameters_and_resources() {
    let template = load(&[("EnableSleepJob", "true")]).unwrap();
    let functions = template.functions().unwrap();
    let env = &functions[0].environment;
    let resolve = |name: &str| template.resolve(&env[name], &FakeResources).unwrap();
    assert_eq!(
        resolve("QUEUE_URLS"),
        "fast=ref-of-FastQueue,slow=ref-of-SlowQueue,urgent=ref-of-UrgentQueue,bulk=ref-of-BulkQueue,\
         webhooks=ref-of-WebhookQueue,webhook-dead-letters=ref-of-WebhookDeadLetterQueue"
    );
    assert_eq!(resolve("JOBS_TABLE"), "ref-of-JobsTable");
    assert_eq!(resolve("ENABLE_SLEEP_JOB"), "true");
    let sub: Yaml = serde_yaml::from_str("!Sub 'arn:${AWS::Region}:${JobsBucket.Arn}/x'").unwrap();
    assert_eq!(
        template.resolve(&sub, &FakeResources).unwrap(),
        "arn:eu-west-1:Arn-of-JobsBucket/x"
    );
    let long: Yaml = serde_yaml::from_str("{'Fn::GetAtt': [FastQueue, Arn]}").unwrap();
    assert_eq!(template.resolve(&long, &FakeResources).unwrap(), "Arn-of-FastQueue");
    let unsupported: Yaml = serde_yaml::from_str("!ImportValue other").unwrap();
    assert!(template.resolve(&unsupported, &FakeResources).is_err());
}

#[test]
fn the_stack_name_is_the_one_the_template_is_deployed_as() {
    let template = load(&[]).unwrap();
    let resolve = |text: &str| {
        let value: Yaml = serde_yaml::from_str(text).unwrap();
        template.resolve(&value, &NoResources).unwrap()
    };
    assert_eq!(resolve("!Ref AWS::StackName"), STACK);
    assert_eq!(resolve("{Ref: 'AWS::StackName'}"), STACK);
    assert_eq!(resolve("!Sub '${AWS::StackName}-jobs'"), "longrun-test-42-jobs");
}

#[test]
fn the_api_authenticates_every_route_by_default() {
    let template = load(&[]).unwrap();
    let apis = template.http_apis();
    assert_eq!(apis.len(), 1, "{apis:?}");
    let api = &apis[0];
    let default = api
        .default_authorizer
        .as_deref()
        .expect("the HttpApi has a DefaultAuthorizer");
    assert_eq!(
        api.authorizers.get(default),
        Some(&true),
        "{default} is a JWT authorizer with an issuer and an audience: {api:?}"
    );
    let routes: Vec<(String, HttpRoute)> = template
        .functions()
        .unwrap()
        .into_iter()
        .flat_map(|f| f.http_routes.into_iter().map(move |r| (f.logical_id.clone(), r)))
        .collect();
    assert_eq!(routes.len(), 12, "{routes:?}");
    // The one public URL is the event stream's, which opens only with a
    // ticket the authenticated API hands out (see the events function).
    let urls: Vec<(String, Option<String>)> = template
        .functions()
        .unwrap()
        .into_iter()
        .filter(|f| f.function_url.is_some())
        .map(|f| (f.function, f.function_url))
        .collect();
    assert_eq!(urls, [("events".to_owned(), Some("RESPONSE_STREAM".to_owned()))]);
    for (function, route) in &routes {
        assert!(
            route.authorizer.as_deref().is_none_or(|a| a != "NONE"),
            "{function} {} {} opts out of the authorizer",
            route.method,
            route.path
        );
    }
    let functions = template.functions().unwrap();
    for function in functions.iter().filter(|f| !f.http_routes.is_empty()) {
        let allow = template
            .resolve(&function.environment["ALLOW_ANONYMOUS"], &FakeResources)
            .unwrap();
        assert_eq!(
            allow, "false",
            "{} lets anonymous callers in by default",
            function.logical_id
        );
        let legacy = template
            .resolve(&function.environment["LEGACY_OWNER_NAMES"], &FakeResources)
            .unwrap();
        assert_eq!(
            legacy, "false",
            "{} shares one owner namespace by default",
            function.logical_id
        );
    }
}

#[test]
fn the_local_authorizer_checks_the_templates_issuer_and_audience() {
    let given = load(&[("JwtIssuer", "https://issuer.example.com"), ("JwtAudience", "app")]).unwrap();
    assert_eq!(
        given.default_jwt_authorizer(&FakeResources).unwrap(),
        Some(("https://issuer.example.com".to_owned(), vec!["app".to_owned()]))
    );
    let missing = load(&[]).unwrap().default_jwt_authorizer(&FakeResources).unwrap_err();
    assert!(missing.to_string().contains("JwtIssuer has no Default"), "{missing}");
}

#[test]
fn a_parameter_without_default_loads_but_does_not_resolve_until_given() {
    let template = load(&[]).unwrap();
    let err = template
        .resolve(&serde_yaml::from_str("!Ref JwtIssuer").unwrap(), &FakeResources)
        .unwrap_err();
    assert!(err.to_string().contains("JwtIssuer has no Default"), "{err}");
    let given = load(&[("JwtIssuer", "https://issuer.example.com")]).unwrap();
    assert_eq!(
        given
            .resolve(&serde_yaml::from_str("!Ref JwtIssuer").unwrap(), &FakeResources)
            .unwrap(),
        "https://issuer.example.com"
    );
}

#[test]
fn every_function_is_the_one_binary_playing_the_role_its_environment_names() {
    let functions = load(&[]).unwrap().functions().unwrap();
    let roles: Vec<(&str, &str)> = functions
        .iter()
        .map(|f| (f.logical_id.as_str(), f.function.as_str()))
        .collect();
    assert!(functions.iter().all(|f| f.binary == "bootstrap"), "{roles:?}");
    for (id, role) in [
        ("SubmitFunction", "submit"),
        ("StatusFunction", "status"),
        ("CancelFunction", "cancel"),
        ("FastWorkerFunction", "worker"),
        ("SlowWorkerFunction", "worker"),
        ("DeadLetterFunction", "dead-letter"),
        ("ReconcilerFunction", "reconciler"),
        ("SchedulerFunction", "scheduler"),
        ("WebhookFunction", "webhook"),
        ("EventsFunction", "events"),
    ] {
        assert!(roles.contains(&(id, role)), "{id} should play {role}: {roles:?}");
    }
    assert_eq!(roles.len(), 10, "{roles:?}");
}

#[test]
fn the_events_functions_concurrency_follows_its_parameter_through_a_condition() {
    let events = |overrides: &[(&str, &str)]| {
        load(overrides)
            .unwrap()
            .functions()
            .unwrap()
            .into_iter()
            .find(|f| f.function == "events")
            .unwrap()
    };
    assert_eq!(events(&[]).reserved_concurrency, Some(20), "bounded by default");
    assert_eq!(events(&[("EventsMaxConcurrency", "3")]).reserved_concurrency, Some(3));
    assert_eq!(
        events(&[("EventsMaxConcurrency", "0")]).reserved_concurrency,
        None,
        "0 reserves nothing (AWS::NoValue)"
    );
    let others = load(&[]).unwrap().functions().unwrap();
    assert!(others
        .iter()
        .filter(|f| f.function != "events")
        .all(|f| f.reserved_concurrency.is_none()));
}

#[test]
fn cors_is_off_by_default_and_lists_the_allowed_origins_when_set() {
    let (api, urls) = load(&[]).unwrap().cors_blocks(&FakeResources).unwrap();
    assert!(api.is_null(), "no cross-origin access by default: {api}");
    assert!(urls.values().all(|c| c.is_null()), "{urls:?}");
    let template = load(&[("AllowedOrigins", "https://a.example,https://b.example")]).unwrap();
    let (api, urls) = template.cors_blocks(&FakeResources).unwrap();
    let origins = serde_json::json!(["https://a.example", "https://b.example"]);
    assert_eq!(api["AllowOrigins"], origins, "{api}");
    assert!(!urls.is_empty());
    assert!(urls.values().all(|c| c["AllowOrigins"] == origins), "{urls:?}");
}
