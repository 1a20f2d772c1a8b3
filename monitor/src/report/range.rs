//! The time range of a report: `--since` and `--until` as an RFC 3339 time,
//! a date, or a duration before now.

use std::time::{Duration, SystemTime};

/// `[since, until)`; an open end takes the log from its start or to its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

impl Range {
    pub fn contains(&self, t: SystemTime) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// "2026-11-29T10:00:00Z", or what an open end means.
    pub fn since_text(&self) -> String {
        self.since
            .map_or_else(|| "the start of the log".to_owned(), seconds)
    }

    pub fn until_text(&self) -> String {
        self.until
            .map_or_else(|| "the end of the log".to_owned(), seconds)
    }
}

/// RFC 3339, UTC, whole seconds: what the report prints for a time.
pub fn seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Why a `--since` or `--until` value was refused, in one line.
#[derive(Debug, thiserror::Error)]
#[error(
    "{option} {value:?} is neither a time (2026-11-29T10:00:00Z, 2026-11-29T11:00:00+01:00, 2026-11-29) nor a duration before now (7d, 12h, 30m)"
)]
pub struct BadTime {
    pub option: &'static str,
    pub value: String,
}

/// The range from the two options' values, `now` being the moment that
/// relative ones count back from.
pub fn parse(since: Option<&str>, until: Option<&str>, now: SystemTime) -> Result<Range, BadTime> {
    let one = |option, value: Option<&str>| {
        value
            .map(|v| {
                parse_time(v, now).ok_or_else(|| BadTime {
                    option,
                    value: v.to_owned(),
                })
            })
            .transpose()
    };
    Ok(Range {
        since: one("--since", since)?,
        until: one("--until", until)?,
    })
}

/// `7d` and `12h` (humantime's durations, which `policy learn --since`
/// takes too) count back from `now`; otherwise an RFC 3339 time in UTC
/// (`Z`) or with an offset, or a date alone (its midnight, UTC).
pub fn parse_time(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(ago) = humantime::parse_duration(value) {
        return now.checked_sub(ago);
    }
    if value.len() == 10 {
        return humantime::parse_rfc3339(&format!("{value}T00:00:00Z")).ok();
    }
    if let Some(local) = value.strip_suffix(['Z', 'z']) {
        return humantime::parse_rfc3339(&format!("{local}Z")).ok();
    }
    // humantime knows only UTC: take the offset off by hand.
    let split = value.len().checked_sub(6)?;
    let (local, offset) = (value.get(..split)?, value.get(split..)?);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let utc_if_local = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let offset = Duration::from_secs(h * 3600 + m * 60);
    // 11:00+01:00 is 10:00Z.
    if sign > 0 {
        utc_if_local.checked_sub(offset)
    } else {
        utc_if_local.checked_add(offset)
    }
}
