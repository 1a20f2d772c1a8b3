//! Plaintext sizes per HTTP request on a probed TLS connection.
//!
//! The kernel stamps each plaintext write that starts a request with the
//! connection's plaintext counters at that moment (`PayloadEvent::marks`).
//! A request's size is the difference between its marks and the next
//! request's (or the connection's final counts): what the client wrote from
//! its head up to the next head, and what it read meanwhile (the response).
//! Exact for one request at a time (HTTP/1.1 keep-alive, sequential
//! HTTP/2); HTTP/2 requests whose heads share one write share one record.

use serde::Serialize;

/// A request read from a plaintext write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    /// The path's purpose class; `None` when no path rule matched.
    pub purpose: Option<&'static str>,
    /// The path as the parsers keep it (no query string or fragment, at
    /// most `dest::http::MAX_PATH_LEN` bytes), only when `[log] paths` is on.
    pub path: Option<String>,
}

/// One request's plaintext sizes, as the connection log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: &'static str,
    pub purpose: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Request heads in the write that began this record: more than one
    /// only for concurrent HTTP/2 requests, whose sizes cannot be told apart.
    #[serde(skip_serializing_if = "is_one")]
    pub heads: u32,
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Requests kept per connection for its log line; later ones are counted
/// in `dropped` (the metrics still see every one).
pub const MAX_LOGGED: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct RequestSizes {
    /// The request in progress and its starting marks (sent, received).
    current: Option<(RequestRecord, [u64; 2])>,
    pub logged: Vec<RequestRecord>,
    pub dropped: u64,
}

impl RequestSizes {
    /// A write starting at `marks` held `requests` (may be empty: HTTP/2
    /// frames without a request). The request before ends there and is
    /// returned. `purpose` applies where no path rule matched.
    pub fn begin(
        &mut self,
        requests: &[Request],
        purpose: &'static str,
        marks: [u64; 2],
    ) -> Option<RequestRecord> {
        let first = requests.first()?;
        let done = self.end(marks);
        let record = RequestRecord {
            method: first.method,
            purpose: first.purpose.unwrap_or(purpose),
            path: first.path.clone(),
            heads: u32::try_from(requests.len()).unwrap_or(u32::MAX),
            egress_bytes: 0,
            ingress_bytes: 0,
        };
        self.current = Some((record, marks));
        done
    }

    /// The request in progress ends at `marks` (the connection's final
    /// plaintext counts when it closes).
    pub fn end(&mut self, marks: [u64; 2]) -> Option<RequestRecord> {
        let (mut record, start) = self.current.take()?;
        record.egress_bytes = marks[0].saturating_sub(start[0]);
        record.ingress_bytes = marks[1].saturating_sub(start[1]);
        if self.logged.len() < MAX_LOGGED {
            self.logged.push(record.clone());
        } else {
            self.dropped += 1;
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &'static str, purpose: Option<&'static str>) -> Request {
        Request {
            method,
            purpose,
            path: None,
        }
    }

    #[test]
    fn each_request_runs_to_the_next_head() {
        let mut sizes = RequestSizes::default();
        assert_eq!(
            sizes.begin(&[req("POST", Some("model-api"))], "other", [0, 0]),
            None
        );
        let first = sizes
            .begin(&[req("GET", None)], "other", [5000, 700])
            .unwrap();
        assert_eq!((first.egress_bytes, first.ingress_bytes), (5000, 700));
        assert_eq!(first.purpose, "model-api");
        let second = sizes.end([5120, 900]).unwrap();
        assert_eq!((second.method, second.purpose), ("GET", "other"));
        assert_eq!((second.egress_bytes, second.ingress_bytes), (120, 200));
        assert_eq!(sizes.end([9999, 9999]), None);
        assert_eq!(sizes.logged, vec![first, second]);
    }

    #[test]
    fn writes_without_requests_do_not_split_one() {
        let mut sizes = RequestSizes::default();
        sizes.begin(&[req("POST", None)], "other", [24, 0]);
        assert_eq!(sizes.begin(&[], "other", [100, 50]), None);
        let done = sizes.end([300, 80]).unwrap();
        assert_eq!(
            (done.egress_bytes, done.ingress_bytes, done.heads),
            (276, 80, 1)
        );
    }

    #[test]
    fn heads_in_one_write_share_a_record() {
        let mut sizes = RequestSizes::default();
        sizes.begin(&[req("POST", None), req("GET", None)], "other", [0, 0]);
        let done = sizes.end([10, 20]).unwrap();
        assert_eq!(done.heads, 2);
        let json = serde_json::to_string(&done).unwrap();
        assert!(json.contains("\"heads\":2"), "{json}");
    }

    #[test]
    fn the_log_keeps_a_bounded_number() {
        let mut sizes = RequestSizes::default();
        for i in 0..(MAX_LOGGED as u64 + 10) {
            sizes.begin(&[req("GET", None)], "other", [i, i]);
        }
        sizes.end([1000, 1000]);
        assert_eq!(sizes.logged.len(), MAX_LOGGED);
        assert_eq!(sizes.dropped, 10);
        let json = serde_json::to_string(&sizes.logged[0]).unwrap();
        assert_eq!(
            json,
            r#"{"method":"GET","purpose":"other","egress_bytes":1,"ingress_bytes":1}"#
        );
    }

    /// One plaintext write on a connection: its size, the request heads
    /// it holds, and the response bytes read after it.
    fn write() -> impl proptest::strategy::Strategy<Value = (u64, usize, u64)> {
        (1..20_000u64, 0..4usize, 0..50_000u64)
    }

    proptest::proptest! {
        /// Whatever the writes, the records split the plaintext from the
        /// first head to the connection's end exactly, one record per
        /// write with heads, and the log keeps a bounded number.
        #[test]
        fn the_records_add_up_to_the_connection(writes in proptest::collection::vec(write(), 0..200)) {
            let mut sizes = RequestSizes::default();
            let (mut sent, mut received) = (0u64, 0u64);
            let mut first = None;
            let mut records = Vec::new();
            for &(len, heads, reply) in &writes {
                let requests = vec![req("POST", None); heads];
                if heads > 0 {
                    first.get_or_insert([sent, received]);
                }
                records.extend(sizes.begin(&requests, "other", [sent, received]));
                sent += len;
                received += reply;
            }
            records.extend(sizes.end([sent, received]));
            let [sent0, received0] = first.unwrap_or([sent, received]);
            proptest::prop_assert_eq!(records.iter().map(|r| r.egress_bytes).sum::<u64>(), sent - sent0);
            proptest::prop_assert_eq!(records.iter().map(|r| r.ingress_bytes).sum::<u64>(), received - received0);
            let with_heads: Vec<u32> = writes.iter().filter(|w| w.1 > 0).map(|w| w.1 as u32).collect();
            proptest::prop_assert_eq!(records.iter().map(|r| r.heads).collect::<Vec<_>>(), with_heads);
            proptest::prop_assert_eq!(sizes.logged.len(), records.len().min(MAX_LOGGED));
            proptest::prop_assert_eq!(&sizes.logged[..], &records[..sizes.logged.len()]);
            proptest::prop_assert_eq!(sizes.dropped as usize, records.len() - sizes.logged.len());
        }
    }
}
