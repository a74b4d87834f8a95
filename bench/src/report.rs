//! The results table: every figure next to its peer's, as a ratio.

use serde_json::json;

/// One compared figure.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario number and name.
    pub scenario: String,
    /// What was measured.
    pub metric: String,
    /// Our figure.
    pub ours: f64,
    /// The peer's figure (NaN: no peer for this line).
    pub peer: f64,
    /// The unit of both.
    pub unit: String,
    /// ours / peer.
    pub ratio: f64,
    /// The goal, in words.
    pub goal: String,
    /// Whether the goal is met (None: informational).
    pub met: Option<bool>,
}

impl Row {
    /// A compared figure; `met` decides from (ours, peer, ratio).
    pub fn new(
        scenario: &str,
        metric: impl Into<String>,
        ours: f64,
        peer: f64,
        unit: &str,
        goal: &str,
        met: impl Fn(f64, f64, f64) -> bool,
    ) -> Row {
        let ratio = if peer != 0.0 { ours / peer } else { f64::NAN };
        Row {
            scenario: scenario.into(),
            metric: metric.into(),
            ours,
            peer,
            unit: unit.into(),
            ratio,
            goal: goal.into(),
            met: (!ours.is_nan() && !peer.is_nan()).then(|| met(ours, peer, ratio)),
        }
    }

    /// A figure without a goal.
    pub fn info(
        scenario: &str,
        metric: impl Into<String>,
        ours: f64,
        peer: f64,
        unit: &str,
    ) -> Row {
        let mut row = Row::new(scenario, metric, ours, peer, unit, "", |_, _, _| true);
        row.met = None;
        row
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Prints the table (Markdown, so it can be pasted into BENCHMARKS.md).
pub fn print(rows: &[Row]) {
    println!();
    println!("| scenario | metric | dondoc | peer | unit | ratio | goal | met |");
    println!("|---|---|---:|---:|---|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.metric,
            num(r.ours),
            num(r.peer),
            r.unit,
            if r.ratio.is_nan() {
                "-".into()
            } else {
                format!("{:.2}", r.ratio)
            },
            r.goal,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        );
    }
}

/// The rows as JSON.
pub fn json(rows: &[Row]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario, "metric": r.metric, "ours": r.ours,
                    "peer": if r.peer.is_nan() { None } else { Some(r.peer) },
                    "unit": r.unit, "ratio": if r.ratio.is_nan() { None } else { Some(r.ratio) },
                    "goal": r.goal, "met": r.met,
                })
            })
            .collect(),
    )
}
