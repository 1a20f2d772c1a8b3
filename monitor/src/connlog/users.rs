//! User names for the log's uids.
//!
//! Looked up with getpwuid_r (nix), so accounts from NSS sources such as
//! LDAP or SSSD resolve as they do for `ls -l`, not only those in
//! /etc/passwd. Each uid is looked up once and cached (a lookup may go over
//! the network); a reload (SIGHUP) clears the cache.

use std::collections::HashMap;

/// Finds the name of a uid; `None` when no account has it.
pub type Lookup = fn(u32) -> Option<String>;

pub struct Users {
    lookup: Lookup,
    names: HashMap<u32, Option<String>>,
}

impl Default for Users {
    fn default() -> Self {
        Self::with_lookup(system_lookup)
    }
}

impl Users {
    pub fn with_lookup(lookup: Lookup) -> Self {
        Self {
            lookup,
            names: HashMap::new(),
        }
    }

    pub fn name(&mut self, uid: u32) -> Option<&str> {
        let lookup = self.lookup;
        self.names
            .entry(uid)
            .or_insert_with(|| lookup(uid))
            .as_deref()
    }

    pub fn clear(&mut self) {
        self.names.clear();
    }
}

fn system_lookup(uid: u32) -> Option<String> {
    use nix::unistd::{Uid, User};
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn root_resolves_and_an_unknown_uid_is_none() {
        let mut users = Users::default();
        assert_eq!(users.name(0), Some("root"));
        // Outside every allocation range (and not (uid_t)-1).
        assert_eq!(users.name(4_000_000_000), None);
    }

    #[test]
    fn each_uid_is_looked_up_once_until_cleared() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn counting(uid: u32) -> Option<String> {
            CALLS.fetch_add(1, Ordering::Relaxed);
            (uid == 1000).then(|| "dev".to_owned())
        }
        let mut users = Users::with_lookup(counting);
        for _ in 0..3 {
            assert_eq!(users.name(1000), Some("dev"));
            assert_eq!(users.name(1001), None);
        }
        assert_eq!(CALLS.load(Ordering::Relaxed), 2);
        users.clear();
        assert_eq!(users.name(1000), Some("dev"));
        assert_eq!(CALLS.load(Ordering::Relaxed), 3);
    }
}
