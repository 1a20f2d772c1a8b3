//! Unit tests of the destination modules; pure, so they run anywhere.

mod bindings;
mod cap;
mod client_hello;
mod dns;
mod h2;
mod http;
mod paths;
mod purpose;

use crate::dest::{Catalog, EntrySpec, Hostname, Naming, Purpose, name_connection};

fn host(name: &str) -> Hostname {
    Hostname::parse_str(name).unwrap()
}

#[test]
fn precedence_is_sni_then_http_then_dns() {
    let (sni, http, dns) = (host("sni.test"), host("http.test"), host("dns.test"));
    let cases = [
        (Some(&sni), Some(&http), Some(&dns), Naming::Sni(&sni)),
        (None, Some(&http), Some(&dns), Naming::Http(&http)),
        (None, None, Some(&dns), Naming::Dns(&dns)),
        (Some(&sni), None, Some(&dns), Naming::Sni(&sni)),
        (None, None, None, Naming::Ip),
    ];
    for (s, h, d, expected) in cases {
        assert_eq!(name_connection(s, h, d), expected);
    }
}

#[test]
fn naming_sources_and_labels() {
    let h = host("api.anthropic.com");
    assert_eq!(Naming::Sni(&h).source(), "sni");
    assert_eq!(Naming::Http(&h).source(), "http");
    assert_eq!(Naming::Dns(&h).source(), "dns");
    assert_eq!(Naming::Ip.source(), "ip");
    assert_eq!(Naming::Dns(&h).host(), Some(&h));
    assert_eq!(Naming::Ip.host(), None);

    let catalog = Catalog::builtin();
    let named = Naming::Sni(&h).classify(&catalog);
    assert_eq!(
        (named.dest.as_str(), named.purpose),
        ("api.anthropic.com", Purpose::ModelApi)
    );
    let bare = Naming::Ip.classify(&catalog);
    assert_eq!((bare.dest.as_str(), bare.purpose), ("ip", Purpose::Other));
}

#[test]
fn test_internet_names_come_from_config() {
    let extra = [EntrySpec {
        host: crate::origin::unplaced("api.model.test".into()),
        purpose: crate::origin::unplaced("model-api".into()),
        dest: None,
    }];
    let catalog = Catalog::new(crate::dest::BUILTIN_CATALOG, &extra).unwrap();
    let c = catalog.classify(&host("api.model.test"));
    assert_eq!(
        (c.dest.as_str(), c.purpose),
        ("api.model.test", Purpose::ModelApi)
    );
    let c = Catalog::builtin().classify(&host("api.model.test"));
    assert_eq!((c.dest.as_str(), c.purpose), ("model.test", Purpose::Other));
}
