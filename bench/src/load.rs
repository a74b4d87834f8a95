//! The load generator: many HTTP/2 connections (tonic channels), a bounded
//! duration, HDR latency histograms; and a raw gRPC codec, so that any
//! method can be called with pre-encoded bytes (the gateway never decodes).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use hdrhistogram::Histogram;
use http::uri::PathAndQuery;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// A codec that passes message bytes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Opens `n` separate HTTP/2 connections to `addr` (one channel each).
pub async fn connections(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        channels.push(
            Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// One unary call with raw bytes and extra metadata.
#[derive(Clone)]
pub struct RawCall {
    /// The method path.
    pub path: PathAndQuery,
    /// The encoded request message.
    pub body: Bytes,
    /// Metadata added to every call.
    pub metadata: Arc<Vec<(MetadataKey<tonic::metadata::Ascii>, AsciiMetadataValue)>>,
}

impl RawCall {
    /// A call of `path` with `message` and `metadata` (`name`, `value`).
    pub fn new(path: &str, message: &impl prost::Message, metadata: &[(&str, String)]) -> Self {
        let metadata = metadata
            .iter()
            .map(|(k, v)| {
                (
                    MetadataKey::from_bytes(k.as_bytes()).expect("metadata key"),
                    v.parse().expect("metadata value"),
                )
            })
            .collect();
        Self {
            path: PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(path.as_bytes()))
                .expect("path"),
            body: Bytes::from(message.encode_to_vec()),
            metadata: Arc::new(metadata),
        }
    }

    /// Sends it on `channel`; the response's bytes.
    pub async fn send(&self, channel: &Channel) -> Result<Bytes, Status> {
        self.send_with(channel, self.body.clone()).await
    }

    /// Sends `body` instead of the prepared message.
    pub async fn send_with(&self, channel: &Channel, body: Bytes) -> Result<Bytes, Status> {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut request = Request::new(body);
        for (k, v) in self.metadata.iter() {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        Ok(grpc
            .unary(request, self.path.clone(), RawCodec)
            .await?
            .into_inner())
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Successful calls.
    pub ok: u64,
    /// Failed calls.
    pub errors: u64,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of successful calls, in microseconds.
    pub hist: Histogram<u64>,
}

impl Stats {
    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    /// One-line summary.
    pub fn line(&self) -> String {
        format!(
            "{:>9.0}/s p50 {:>7.3} ms p99 {:>7.3} ms max {:>8.3} ms ({} ok, {} errors{})",
            self.rate(),
            self.ms(0.5),
            self.ms(0.99),
            self.hist.max() as f64 / 1000.0,
            self.ok,
            self.errors,
            self.first_error
                .as_deref()
                .map(|e| format!(": {}", e.chars().take(120).collect::<String>()))
                .unwrap_or_default()
        )
    }
}

/// A measurement that adds up over runs (the rounds in which the sides of
/// a comparison take turns).
pub trait Merge {
    /// Adds another run's measurement to this one.
    fn merge(&mut self, other: Self);
}

impl Merge for Stats {
    /// Adds another run's calls, time and latencies to these.
    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.elapsed += other.elapsed;
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds");
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// Runs `workers` closed-loop workers for `duration`; worker `w` calls
/// `call(w, i)` for its i-th call. With `rate` set, the workers together
/// start at most that many calls per second (each on its own schedule).
pub async fn run<F, Fut>(workers: usize, duration: Duration, rate: Option<f64>, call: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let end = start + duration;
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers.max(1) {
        let call = call.clone();
        let interval = rate.map(|r| Duration::from_secs_f64(workers.max(1) as f64 / r));
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut i = 0u64;
            // Spread the paced workers' first calls over one interval.
            let mut next =
                start + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(w as f64 / workers as f64));
            loop {
                if let Some(iv) = interval {
                    if next >= end {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                match call(w, i).await {
                    Ok(()) => {
                        ok += 1;
                        let _ = hist.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                i += 1;
            }
            (ok, errors, first_error, hist)
        }));
    }
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        hist: histogram(),
    };
    for h in handles {
        if let Ok((ok, errors, first_error, hist)) = h.await {
            stats.ok += ok;
            stats.errors += errors;
            if stats.first_error.is_none() {
                stats.first_error = first_error;
            }
            let _ = stats.hist.add(&hist);
        }
    }
    stats.elapsed = start.elapsed().min(duration.max(start.elapsed()));
    stats
}

/// CPU seconds (user + system) used by a process so far.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15 (1-based); here index 11 and 12.
    (get(11) + get(12)) / clock_ticks()
}

/// CPU seconds (user + system) used so far by a process, by the children
/// it has waited for, and by its live children: a PostgreSQL postmaster
/// with its backends, or a server alone. Other work on the machine (builds,
/// other clusters) does not count.
pub fn process_tree_cpu_seconds(pid: u32) -> f64 {
    let fields = |pid: &str| -> Vec<f64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        after
            .split_whitespace()
            .map(|x| x.parse::<f64>().unwrap_or(0.0))
            .collect()
    };
    let get = |f: &[f64], i: usize| f.get(i).copied().unwrap_or(0.0);
    // After the command: state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    let own = fields(&pid.to_string());
    let mut ticks = get(&own, 11) + get(&own, 12) + get(&own, 13) + get(&own, 14);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let f = fields(name);
            if get(&f, 1) as u32 == pid {
                ticks += get(&f, 11) + get(&f, 12);
            }
        }
    }
    ticks / clock_ticks()
}

/// The postmaster's pid of a cluster, from its data folder.
pub fn postmaster_pid(data_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn clock_ticks() -> f64 {
    100.0
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
