//! HTTP basic authentication against the bcrypt hashes of
//! `basic_auth_users`.
//!
//! bcrypt is slow on purpose: one check at cost 10 took 150 ms of CPU on
//! the 2-core test machine (`tests::a_check_costs_milliseconds` prints it).
//! Checks run on the blocking pool, so a slow one never stalls the event
//! loop or other scrapes, and a pair that passed once is remembered, so
//! Prometheus's scrape every 15 s costs one bcrypt per password change,
//! not one per scrape. Failures are never remembered: each wrong guess
//! pays the full cost. An unknown user is checked against a dummy hash, so
//! that the answer's timing does not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// bcrypt of a random password nobody knows, cost 10: the time an unknown
/// user's check takes should match a known one's at the usual cost.
const DUMMY_HASH: &str = "$2b$10$84iH2FQbAKQhhhm1PKzu0eF41hPvRoS.qxgmZ.dwcrGoNl/l2wA12";
/// Pairs remembered; past this the memory starts afresh.
const REMEMBERED: usize = 64;

/// The users of one loaded web config. Not `Debug`: it holds hashes and
/// passwords, which no log line may show.
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// (user, password) pairs that passed; cleared with each new config,
    /// as it drops this whole value.
    passed: Mutex<HashSet<(String, String)>>,
}

impl Users {
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        Users {
            hashes,
            passed: Mutex::new(HashSet::new()),
        }
    }

    /// Whether the request's `Authorization: Basic` names a user and the
    /// right password. May block for one bcrypt check: call it off the
    /// event loop (`spawn_blocking`).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some((user, password)) = credentials(headers) else {
            return false;
        };
        let pair = (user, password);
        if self.passed().contains(&pair) {
            return true;
        }
        let ok = match self.hashes.get(&pair.0) {
            Some(hash) => bcrypt::verify(&pair.1, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&pair.1, DUMMY_HASH);
                false
            }
        };
        if ok {
            let mut passed = self.passed();
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(pair);
        }
        ok
    }

    fn passed(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.passed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// User and password of an `Authorization: Basic base64(user:password)`
/// header; `None` when absent or malformed.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        );
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    fn users(cost: u32) -> Users {
        let hash = bcrypt::hash("s3cret:with colon", cost).unwrap();
        Users::new(BTreeMap::from([("prometheus".to_owned(), hash)]))
    }

    #[test]
    fn right_password_passes_others_do_not() {
        let users = users(4);
        assert!(users.allows(&basic("prometheus:s3cret:with colon")));
        // Remembered: passes again without a bcrypt check.
        assert!(users.allows(&basic("prometheus:s3cret:with colon")));
        assert!(!users.allows(&basic("prometheus:s3cret")));
        assert!(!users.allows(&basic("nobody:s3cret:with colon")));
        assert!(!users.allows(&HeaderMap::new()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let mut h = HeaderMap::new();
        for value in ["Bearer abc", "Basic !!!", "Basic", "Basic bm9jb2xvbg=="] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(credentials(&h), None, "{value}");
        }
        h.insert(header::AUTHORIZATION, "basic YTpi".parse().unwrap());
        assert_eq!(credentials(&h), Some(("a".into(), "b".into())));
    }

    #[test]
    fn the_dummy_hash_is_a_cost_10_hash() {
        assert!(!bcrypt::verify("", DUMMY_HASH).unwrap());
        assert!(DUMMY_HASH.starts_with("$2b$10$"));
    }

    /// Prints what one check costs at the usual cost 10 (the README quotes it).
    #[test]
    fn a_check_costs_milliseconds() {
        let users = users(10);
        let start = Instant::now();
        assert!(!users.allows(&basic("prometheus:wrong")));
        let took = start.elapsed();
        eprintln!("one bcrypt check at cost 10: {took:?}");
        assert!(took.as_millis() >= 1, "{took:?}");
    }
}
