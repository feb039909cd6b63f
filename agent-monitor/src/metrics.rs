//! Prometheus metrics: counters and histograms the daemon's hot paths bump, and the text
//! that `GET /metrics` answers (format 0.0.4).
//!
//! One process-wide set ([`global`]): the daemon is one per process, and a static spares
//! threading a handle through every handler for what is a few atomic adds per call. Gauges
//! that the database knows (viewers by state, failures by reason) are read at scrape time
//! from the store, so they can never drift from it; see `rest::metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A histogram with fixed upper bounds, in seconds.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus +Inf; not cumulative (made so when written).
    counts: Vec<AtomicU64>,
    /// Sum in microseconds, so that it can be an atomic integer.
    sum_us: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_us: AtomicU64::new(0) }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self.bounds.iter().position(|b| s <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Relaxed);
            let le = self.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Requests and faults of one XML-RPC method.
#[derive(Default)]
struct MethodCounts {
    requests: u64,
    /// Fault code → count.
    faults: BTreeMap<i32, u64>,
}

pub struct Metrics {
    pub launches: AtomicU64,
    pub job_starts: AtomicU64,
    pub job_start_failures: AtomicU64,
    pub heartbeats: AtomicU64,
    /// From a launch's commit to its viewer's `ready` report.
    pub click_to_ready: Histogram,
    pub sweep_duration: Histogram,
    pub store_commit: Histogram,
    /// Method names are from the dispatch table (or "unknown"): bounded label values.
    methods: Mutex<BTreeMap<&'static str, MethodCounts>>,
}

const READY_BOUNDS: &[f64] = &[5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0];
const FAST_BOUNDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        launches: AtomicU64::new(0),
        job_starts: AtomicU64::new(0),
        job_start_failures: AtomicU64::new(0),
        heartbeats: AtomicU64::new(0),
        click_to_ready: Histogram::new(READY_BOUNDS),
        sweep_duration: Histogram::new(FAST_BOUNDS),
        store_commit: Histogram::new(FAST_BOUNDS),
        methods: Mutex::new(BTreeMap::new()),
    })
}

impl Metrics {
    /// Counts one call of `method` (a name from the dispatch table), and its fault if any.
    pub fn request(&self, method: &'static str, fault: Option<i32>) {
        let mut m = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(method).or_default();
        e.requests += 1;
        if let Some(code) = fault {
            *e.faults.entry(code).or_default() += 1;
        }
    }

    /// The counters and histograms, in Prometheus text.
    pub fn write(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        };
        counter(
            out,
            "vrun_launches_total",
            "Viewer instances created (launches that took a pair's lock).",
            &self.launches,
        );
        counter(out, "vrun_job_starts_total", "Jobs the launcher started.", &self.job_starts);
        counter(out, "vrun_job_start_failures_total", "Jobs the launcher could not start.", &self.job_start_failures);
        counter(out, "vrun_heartbeats_total", "Job heartbeats received.", &self.heartbeats);
        self.click_to_ready.write(out, "vrun_click_to_ready_seconds", "From a launch to its viewer reporting ready.");
        self.sweep_duration.write(out, "vrun_sweep_duration_seconds", "Duration of one reconciliation sweep.");
        self.store_commit.write(out, "vrun_store_commit_seconds", "Duration of one group commit of the store.");
        let methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP vrun_rpc_requests_total XML-RPC calls by method.\n# TYPE vrun_rpc_requests_total counter"
        );
        for (name, c) in methods.iter() {
            let _ = writeln!(out, "vrun_rpc_requests_total{{method=\"{name}\"}} {}", c.requests);
        }
        let _ = writeln!(out, "# HELP vrun_rpc_faults_total XML-RPC faults by method and fault code.\n# TYPE vrun_rpc_faults_total counter");
        for (name, c) in methods.iter() {
            for (code, n) in &c.faults {
                let _ = writeln!(out, "vrun_rpc_faults_total{{method=\"{name}\",code=\"{code}\"}} {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut out = String::new();
        h.write(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n") && out.contains("x_sum 5.55\n"), "{out}");
    }
}
