use crate::dest::paths::{
    BUILTIN_PATHS, MAX_CLASS_LEN, PathCatalog, PathCatalogError, PathClass, PathEntrySpec,
};
use crate::dest::{Catalog, Hostname, Origin, Purpose};
use crate::origin::unplaced;

fn host(name: &str) -> Hostname {
    Hostname::parse_str(name).unwrap()
}

fn class<'a>(catalog: &'a PathCatalog, h: &str, path: &str) -> Option<(Purpose, &'a str)> {
    catalog
        .classify(&host(h), path)
        .map(|PathClass { purpose, class }| (purpose, class))
}

fn spec(host: &str, path: &str, purpose: &str, class: Option<&str>) -> PathEntrySpec {
    PathEntrySpec {
        host: unplaced(host.into()),
        path: unplaced(path.into()),
        purpose: unplaced(purpose.into()),
        class: class.map(|c| unplaced(c.into())),
    }
}

#[test]
fn builtin_catalog_builds() {
    let catalog = PathCatalog::builtin();
    let classes: Vec<&str> = catalog.classes().collect();
    assert!(classes.contains(&"messages") && classes.contains(&"event_logging"));
    assert!(
        classes
            .iter()
            .all(|c| !c.is_empty() && c.len() <= MAX_CLASS_LEN)
    );
}

#[test]
fn same_host_model_calls_and_telemetry() {
    let c = PathCatalog::builtin();
    let model = Some((Purpose::ModelApi, "messages"));
    assert_eq!(class(&c, "api.anthropic.com", "/v1/messages"), model);
    assert_eq!(
        class(&c, "api.anthropic.com", "/v1/messages/batches"),
        model
    );
    assert_eq!(
        class(&c, "api.anthropic.com", "/v1/messages/count_tokens"),
        Some((Purpose::ModelApi, "count_tokens"))
    );
    assert_eq!(
        class(&c, "api.anthropic.com", "/api/event_logging/batch"),
        Some((Purpose::Telemetry, "event_logging"))
    );
    assert_eq!(
        class(&c, "api.anthropic.com", "/api/oauth/profile"),
        Some((Purpose::Auth, "oauth"))
    );
    // Segment boundaries, case, and paths no entry knows.
    assert_eq!(class(&c, "api.anthropic.com", "/v1/messagesX"), None);
    assert_eq!(class(&c, "api.anthropic.com", "/V1/messages"), None);
    assert_eq!(class(&c, "api.anthropic.com", "/"), None);
    assert_eq!(class(&c, "api.anthropic.com", ""), None);
    assert_eq!(class(&c, "api.anthropic.com", "*"), None);
    // The host must match: the same path elsewhere is not classified.
    assert_eq!(class(&c, "gateway.corp.test", "/v1/messages"), None);
    assert_eq!(class(&c, "evil-anthropic.com", "/v1/messages"), None);
}

#[test]
fn openai_codex_gemini_copilot() {
    let c = PathCatalog::builtin();
    let cases = [
        (
            "api.openai.com",
            "/v1/responses",
            Purpose::ModelApi,
            "responses",
        ),
        (
            "api.openai.com",
            "/v1/chat/completions",
            Purpose::ModelApi,
            "chat_completions",
        ),
        (
            "chatgpt.com",
            "/backend-api/codex/responses",
            Purpose::ModelApi,
            "responses",
        ),
        (
            "chatgpt.com",
            "/backend-api/codex/models",
            Purpose::ModelApi,
            "codex",
        ),
        (
            "chatgpt.com",
            "/backend-api/codex/analytics-events/events",
            Purpose::Telemetry,
            "analytics_events",
        ),
        (
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            Purpose::ModelApi,
            "stream_generate_content",
        ),
        (
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            Purpose::ModelApi,
            "generate_content",
        ),
        (
            "cloudcode-pa.googleapis.com",
            "/v1internal:streamGenerateContent",
            Purpose::ModelApi,
            "stream_generate_content",
        ),
        (
            "cloudcode-pa.googleapis.com",
            "/v1internal:loadCodeAssist",
            Purpose::ModelApi,
            "code_assist",
        ),
        (
            "play.googleapis.com",
            "/log",
            Purpose::Telemetry,
            "clearcut",
        ),
        (
            "us-east5-aiplatform.googleapis.com",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x:streamRawPredict",
            Purpose::ModelApi,
            "stream_raw_predict",
        ),
        (
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/anthropic.claude-x/invoke-with-response-stream",
            Purpose::ModelApi,
            "invoke_stream",
        ),
        (
            "api.githubcopilot.com",
            "/chat/completions",
            Purpose::ModelApi,
            "chat_completions",
        ),
        (
            "api.individual.githubcopilot.com",
            "/chat/completions",
            Purpose::ModelApi,
            "chat_completions",
        ),
    ];
    for (h, path, purpose, label) in cases {
        assert_eq!(class(&c, h, path), Some((purpose, label)), "{h} {path}");
    }
    // `*` needs text: no model name, no match.
    assert_eq!(
        class(
            &c,
            "generativelanguage.googleapis.com",
            "/v1beta/models/:generateContent"
        ),
        None
    );
    assert_eq!(class(&c, "play.googleapis.com", "/logs"), None);
    assert_eq!(class(&c, "githubcopilot.com", "/chat/completions"), None);
}

#[test]
fn sanitised_paths_from_the_parsers_match() {
    // What `http` and `h2` hand over: no query, odd bytes as `_`.
    let c = PathCatalog::builtin();
    let mut conn = crate::dest::H2Conn::new();
    let out = conn.feed(include_bytes!("../testdata/h2_node.bin"), false);
    let got: Vec<_> = out
        .iter()
        .map(|r| {
            class(
                &c,
                r.authority.as_ref().unwrap().as_str(),
                r.path.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            Some((Purpose::ModelApi, "messages")),
            Some((Purpose::Telemetry, "event_logging")),
            Some((Purpose::ModelApi, "models")),
        ]
    );
    // The host catalog alone calls all of them model traffic.
    assert_eq!(
        Catalog::builtin()
            .classify(&host("api.anthropic.com"))
            .purpose,
        Purpose::ModelApi
    );
}

#[test]
fn config_entries_win_and_default_their_class() {
    let extra = [
        spec("gateway.corp.test", "/v1/messages", "model-api", None),
        spec(
            "gateway.corp.test",
            "/v1/chat/completions",
            "model-api",
            None,
        ),
        spec("gateway.corp.test", "/", "other", None),
        spec(
            "*.corp.test",
            "/telemetry/*",
            "telemetry",
            Some("corp-telemetry"),
        ),
        spec(
            "gateway.corp.test",
            "/v1beta/models/*:generateContent",
            "model-api",
            None,
        ),
        // Overrides a built-in entry, although less specific.
        spec("api.anthropic.com", "/api", "other", Some("api")),
    ];
    let c = PathCatalog::new(BUILTIN_PATHS, &extra).unwrap();
    let cases = [
        (
            "gateway.corp.test",
            "/v1/messages",
            Some((Purpose::ModelApi, "messages")),
        ),
        (
            "gateway.corp.test",
            "/v1/chat/completions",
            Some((Purpose::ModelApi, "completions")),
        ),
        (
            "gateway.corp.test",
            "/health",
            Some((Purpose::Other, "root")),
        ),
        (
            "gateway.corp.test",
            "/telemetry/x",
            Some((Purpose::Telemetry, "corp-telemetry")),
        ),
        (
            "a.b.corp.test",
            "/telemetry/x",
            Some((Purpose::Telemetry, "corp-telemetry")),
        ),
        ("a.b.corp.test", "/telemetry", None),
        (
            "gateway.corp.test",
            "/v1beta/models/m:generateContent",
            Some((Purpose::ModelApi, "generatecontent")),
        ),
        (
            "api.anthropic.com",
            "/api/event_logging/batch",
            Some((Purpose::Other, "api")),
        ),
        (
            "api.anthropic.com",
            "/v1/messages",
            Some((Purpose::ModelApi, "messages")),
        ),
    ];
    for (h, path, expected) in cases {
        assert_eq!(class(&c, h, path), expected, "{h} {path}");
    }
}

#[test]
fn later_of_equally_specific_entries_wins() {
    let extra = [
        spec("a.test", "/x", "telemetry", Some("first")),
        spec("a.test", "/x", "model-api", Some("second")),
        spec("*.test", "/x/y", "auth", Some("deeper")),
    ];
    let c = PathCatalog::new("", &extra).unwrap();
    assert_eq!(
        class(&c, "a.test", "/x"),
        Some((Purpose::ModelApi, "second"))
    );
    // A longer path pattern wins over an exact host.
    assert_eq!(
        class(&c, "a.test", "/x/y/z"),
        Some((Purpose::Auth, "deeper"))
    );
}

#[test]
fn bad_entries_are_reported() {
    let bad = |s: PathEntrySpec| PathCatalog::new("", &[s]).unwrap_err();
    assert!(matches!(
        bad(spec("a b", "/x", "other", None)),
        PathCatalogError::BadHost {
            origin: Origin::Config(0),
            ..
        }
    ));
    assert!(matches!(
        bad(spec("*", "/x", "other", None)),
        PathCatalogError::BadHost { .. }
    ));
    for path in [
        "x",
        "/a?b=1",
        "/a//b",
        "/**",
        "/a b",
        &format!("/{}", "a".repeat(300)),
        &"/a".repeat(17),
    ] {
        assert!(
            matches!(
                bad(spec("a.test", path, "other", None)),
                PathCatalogError::BadPath { .. }
            ),
            "{path}"
        );
    }
    assert!(matches!(
        bad(spec("a.test", "/x", "ads", None)),
        PathCatalogError::BadPurpose { .. }
    ));
    for label in [
        "",
        "Messages",
        "a b",
        "a\"}",
        &"a".repeat(MAX_CLASS_LEN + 1),
    ] {
        assert!(
            matches!(
                bad(spec("a.test", "/x", "other", Some(label))),
                PathCatalogError::BadClass { .. }
            ),
            "{label:?}"
        );
    }
    let err = bad(spec("a.test", "/x", "ads", None)).to_string();
    assert!(err.contains("unknown purpose \"ads\""), "{err}");

    assert!(matches!(
        PathCatalog::new("path = 3", &[]).unwrap_err(),
        PathCatalogError::Parse(_)
    ));
    assert!(matches!(
        PathCatalog::new(
            "path = [{ host = \"a.test\", path = \"/x\", purpose = \"other\", extra = 1 }]",
            &[]
        )
        .unwrap_err(),
        PathCatalogError::Parse(_)
    ));
}

#[test]
fn default_class_is_bounded() {
    let long = format!("/{}", "Ab.".repeat(40));
    let c = PathCatalog::new("", &[spec("a.test", &long, "other", None)]).unwrap();
    let got = c.classes().next().unwrap();
    assert_eq!(got.len(), MAX_CLASS_LEN);
    assert!(got.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
}
