use serde::Deserialize;

use crate::dest::Hostname;
use crate::dest::purpose::{
    BUILTIN_CATALOG, Catalog, CatalogError, EntrySpec, Origin, Purpose, registrable_domain,
};
use crate::origin::unplaced;

fn host(name: &str) -> Hostname {
    Hostname::parse_str(name).unwrap()
}

fn classify(catalog: &Catalog, name: &str) -> (String, &'static str) {
    let c = catalog.classify(&host(name));
    (c.dest, c.purpose.label())
}

fn entry(host: &str, purpose: &str, dest: Option<&str>) -> EntrySpec {
    EntrySpec {
        host: unplaced(host.into()),
        purpose: unplaced(purpose.into()),
        dest: dest.map(|d| unplaced(d.into())),
    }
}

#[test]
fn builtin_catalog_hits() {
    let c = Catalog::builtin();
    let cases = [
        ("api.anthropic.com", "api.anthropic.com", "model-api"),
        ("API.OpenAI.com", "api.openai.com", "model-api"),
        // Qwen Code: its model APIs, its login and its usage statistics.
        (
            "dashscope-intl.aliyuncs.com",
            "dashscope-intl.aliyuncs.com",
            "model-api",
        ),
        ("portal.qwen.ai", "portal.qwen.ai", "model-api"),
        ("chat.qwen.ai", "chat.qwen.ai", "auth"),
        (
            "gb4w8c3ygj-default-sea.rum.aliyuncs.com",
            "rum.aliyuncs.com",
            "telemetry",
        ),
        // Amp relays model calls; Auggie talks to its tenant's shard.
        ("ampcode.com", "ampcode.com", "model-api"),
        (
            "d16.api.augmentcode.com",
            "api.augmentcode.com",
            "model-api",
        ),
        // Crush: its usage events and its model list.
        ("data.charm.land", "data.charm.land", "telemetry"),
        ("catwalk.charm.sh", "catwalk.charm.sh", "update"),
        ("o4507.ingest.us.sentry.io", "sentry.io", "telemetry"),
        (
            "http-intake.logs.us5.datadoghq.com",
            "datadoghq.com",
            "telemetry",
        ),
        (
            "statsig.anthropic.com",
            "statsig.anthropic.com",
            "telemetry",
        ),
        ("q.us-east-1.amazonaws.com", "q.amazonaws.com", "model-api"),
        (
            "q.eu-central-1.amazonaws.com",
            "q.amazonaws.com",
            "model-api",
        ),
        ("oidc.eu-west-1.amazonaws.com", "oidc.amazonaws.com", "auth"),
        (
            "client-telemetry.us-east-1.amazonaws.com",
            "client-telemetry.amazonaws.com",
            "telemetry",
        ),
        (
            "generativelanguage.googleapis.com",
            "generativelanguage.googleapis.com",
            "model-api",
        ),
        (
            "us-central1-aiplatform.googleapis.com",
            "aiplatform.googleapis.com",
            "model-api",
        ),
        (
            "api.individual.githubcopilot.com",
            "githubcopilot.com",
            "model-api",
        ),
        ("downloads.claude.ai", "downloads.claude.ai", "update"),
        (
            "registry.npmjs.org",
            "registry.npmjs.org",
            "package-registry",
        ),
        ("claude.ai", "claude.ai", "auth"),
        ("ipinfo.io", "ipinfo.io", "geolocation"),
        (
            "checkip.amazonaws.com",
            "checkip.amazonaws.com",
            "geolocation",
        ),
        ("ipv4.icanhazip.com", "icanhazip.com", "geolocation"),
        ("ab.chatgpt.com", "ab.chatgpt.com", "telemetry"),
        ("chatgpt.com", "chatgpt.com", "model-api"),
    ];
    for (name, dest, purpose) in cases {
        assert_eq!(classify(&c, name), (dest.to_owned(), purpose), "{name}");
    }
}

#[test]
fn misses_use_the_registrable_domain() {
    let c = Catalog::builtin();
    let cases = [
        ("sentry.io", "sentry.io"),             // `*.sentry.io` is subdomains only
        ("www.example.co.uk", "example.co.uk"), // multi-label public suffix
        ("a.b.unknown-tld-zz", "b.unknown-tld-zz"), // unlisted suffix: last two labels
        ("api.model.test", "model.test"),
        ("github.io", "github.io"),           // itself a public suffix
        ("user.github.io", "user.github.io"), // private-section suffix
        ("localhost", "localhost"),
        // `*-aiplatform` needs the dash; googleapis.com is a private suffix.
        ("x.aiplatform.googleapis.com", "aiplatform.googleapis.com"),
        ("storage.googleapis.com", "storage.googleapis.com"),
    ];
    for (name, dest) in cases {
        assert_eq!(classify(&c, name), (dest.to_owned(), "other"), "{name}");
        assert_eq!(registrable_domain(&host(name)), dest);
    }
}

#[test]
fn config_entries_win() {
    let extra = [
        entry(
            "api.anthropic.com",
            "other",
            Some("Anthropic-Gateway.internal"),
        ),
        entry("*.model.test", "model-api", None),
        entry("llm.*.corp.test", "model-api", Some("llm.corp.test")),
        entry("*.sentry.io", "other", None),
    ];
    let c = Catalog::new(BUILTIN_CATALOG, &extra).unwrap();
    assert_eq!(
        classify(&c, "api.anthropic.com"),
        ("anthropic-gateway.internal".into(), "other")
    );
    assert_eq!(
        classify(&c, "api.model.test"),
        ("model.test".into(), "model-api")
    );
    assert_eq!(classify(&c, "model.test"), ("model.test".into(), "other"));
    assert_eq!(
        classify(&c, "llm.eu.corp.test"),
        ("llm.corp.test".into(), "model-api")
    );
    assert_eq!(
        classify(&c, "llm.a.b.corp.test"),
        ("corp.test".into(), "other")
    );
    assert_eq!(
        classify(&c, "o1.ingest.sentry.io"),
        ("sentry.io".into(), "other")
    );
    assert_eq!(
        classify(&c, "api.openai.com"),
        ("api.openai.com".into(), "model-api")
    );
}

#[test]
fn most_specific_pattern_wins_then_later_entry() {
    let builtin = r#"entry = [
        { host = "*.example.test", purpose = "telemetry" },
        { host = "*.logs.example.test", purpose = "model-api", dest = "logs.example.test" },
        { host = "*.example.test", purpose = "auth" },
        { host = "exact.logs.example.test", purpose = "update" },
    ]"#;
    let c = Catalog::new(builtin, &[]).unwrap();
    assert_eq!(
        classify(&c, "a.logs.example.test"),
        ("logs.example.test".into(), "model-api")
    );
    assert_eq!(
        classify(&c, "a.example.test"),
        ("example.test".into(), "auth")
    );
    assert_eq!(
        classify(&c, "exact.logs.example.test"),
        ("exact.logs.example.test".into(), "update")
    );
}

#[test]
fn bad_entries_are_reported_with_their_origin() {
    let bad = |spec: EntrySpec| {
        Catalog::new(BUILTIN_CATALOG, &[entry("ok.test", "auth", None), spec]).unwrap_err()
    };
    for pattern in [
        "a b.test",
        "*",
        "*.*",
        "a**.test",
        "a..test",
        "evil\"}.test",
        "203.0.113.1",
    ] {
        let err = bad(entry(pattern, "auth", None));
        assert!(
            matches!(
                err,
                CatalogError::BadHost {
                    origin: Origin::Config(0),
                    ..
                }
            ),
            "{pattern}: {err}"
        );
    }
    let err = bad(entry("a.test", "spying", None));
    assert!(
        matches!(
            err,
            CatalogError::BadPurpose {
                origin: Origin::Config(0),
                ..
            }
        ),
        "{err}"
    );
    let err = bad(entry("a.test", "auth", Some("evil\"} 1\n#")));
    assert!(
        matches!(
            err,
            CatalogError::BadDest {
                origin: Origin::Config(0),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("destination entry \"a.test\""),
        "{err}"
    );

    let err = Catalog::new("entry = [{ host = \"a.test\" }]", &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("built-in destination catalog is not valid"),
        "{err}"
    );
}

#[test]
fn config_shape_deserialises() {
    #[derive(Deserialize)]
    struct Config {
        dest: DestConfig,
    }
    #[derive(Deserialize)]
    struct DestConfig {
        entry: Vec<EntrySpec>,
    }
    let config: Config = toml::from_str(
        "[[dest.entry]]\nhost = \"api.model.test\"\npurpose = \"model-api\"\n\n\
         [[dest.entry]]\nhost = \"*.vendor.test\"\npurpose = \"telemetry\"\ndest = \"vendor.test\"\n",
    )
    .unwrap();
    assert_eq!(
        config.dest.entry[1],
        entry("*.vendor.test", "telemetry", Some("vendor.test"))
    );
    assert!(toml::from_str::<EntrySpec>("host = \"a\"\npurpose = \"auth\"\nport = 1").is_err());
}

#[test]
fn every_builtin_entry_classifies_its_own_host() {
    #[derive(Deserialize)]
    struct File {
        entry: Vec<EntrySpec>,
    }
    let file: File = toml::from_str(BUILTIN_CATALOG).unwrap();
    let c = Catalog::builtin();
    for spec in file.entry {
        // A sample name for the pattern: every `*` becomes a label `zz`.
        let name = spec.host.get_ref().replace('*', "zz");
        let got = c.classify(&host(&name));
        assert_eq!(
            got.purpose.label(),
            spec.purpose.get_ref(),
            "{} shadowed",
            spec.host
        );
        assert!(Hostname::parse_str(&got.dest).is_some(), "{}", got.dest);
    }
}

#[test]
fn purpose_labels_round_trip() {
    for p in Purpose::ALL {
        assert_eq!(Purpose::from_label(p.label()), Some(p));
    }
    assert_eq!(Purpose::from_label("Model-API"), None);
}
