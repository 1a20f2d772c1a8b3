use std::path::Path;

use super::*;
use crate::geoip::GeoipConfig;

const COUNTRY: &[u8] = include_bytes!("../testdata/geoip/country.mmdb");
const ASN: &[u8] = include_bytes!("../testdata/geoip/asn.mmdb");

/// The test databases, with AS64501 (198.51.100.0/24, DE) as anycast.
fn geoip(dir: &Path) -> GeoIp {
    let (country, asn) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&country, COUNTRY).unwrap();
    std::fs::write(&asn, ASN).unwrap();
    GeoIp::from_config(&GeoipConfig {
        country,
        asn,
        anycast_asns: vec![64501],
        ..GeoipConfig::default()
    })
}

fn host(s: &str) -> Hostname {
    Hostname::parse_str(s).unwrap()
}

#[test]
fn a_catalog_host_gets_its_entry_country_and_network() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geoip(dir.path());
    let l = labels(
        &Catalog::builtin(),
        &geo,
        Some(&host("API.Anthropic.com")),
        "203.0.113.5".parse().unwrap(),
    );
    assert_eq!(
        l,
        Labels {
            host: Some("api.anthropic.com".into()),
            addr: "203.0.113.5".parse().unwrap(),
            dest: "api.anthropic.com".into(),
            purpose: "model-api",
            entry: Some(Entry {
                origin: "built-in",
                host: "api.anthropic.com".into()
            }),
            dest_country: "US".into(),
            database_country: "US".into(),
            dest_asn: "AS64500".into(),
            dest_asn_org: Some("Example-Net-US".into()),
            anycast: false,
            anycast_source: None,
        }
    );
    assert_eq!(
        render(&[l]),
        "api.anthropic.com at 203.0.113.5\n\
        \x20 dest          api.anthropic.com\n\
        \x20 purpose       model-api (built-in entry api.anthropic.com)\n\
        \x20 dest_country  US\n\
        \x20 dest_asn      AS64500 (Example-Net-US)\n\
        \x20 anycast       no\n"
    );
}

#[test]
fn anycast_wildcards_and_bare_addresses_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let geo = geoip(dir.path());
    let catalog = Catalog::builtin();
    let addr: IpAddr = "198.51.100.77".parse().unwrap();
    let l = labels(&catalog, &geo, Some(&host("o1.ingest.sentry.io")), addr);
    assert_eq!((l.dest.as_str(), l.purpose), ("sentry.io", "telemetry"));
    assert_eq!(
        l.entry,
        Some(Entry {
            origin: "built-in",
            host: "*.sentry.io".into()
        })
    );
    assert_eq!(
        (
            l.dest_country.as_str(),
            l.database_country.as_str(),
            l.anycast
        ),
        ("anycast", "DE", true)
    );
    let text = render(std::slice::from_ref(&l));
    assert!(
        text.contains("dest_country  anycast (AS64501 is anycast by the [geoip] anycast_asns in the config; the database says DE)"),
        "{text}"
    );
    // A name no entry knows: its registrable domain, purpose other.
    let l = labels(&catalog, &geo, Some(&host("a.b.example.org")), addr);
    assert_eq!(
        (l.dest.as_str(), l.purpose, l.entry),
        ("example.org", "other", None)
    );
    // No name at all.
    let l = labels(&catalog, &geo, None, "10.1.2.3".parse().unwrap());
    assert_eq!(
        (
            l.dest.as_str(),
            l.dest_country.as_str(),
            l.dest_asn.as_str()
        ),
        ("ip", "private", "private")
    );
    assert!(render(&[l]).starts_with("10.1.2.3 (no name: as a bare address)\n"));
}
