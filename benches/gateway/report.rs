//! The report: one row per figure with its target and verdict, printed as a table and
//! written as JSON.

use crate::process::{Gateway, machine, open_file_limit};
use crate::sampling::percentile;
use crate::{CHANNELS, GATEWAY_BIN, Plan};
use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
    /// On gateway / direct (a rate through the gateway against the same rate direct).
    RatioAtLeast(f64),
}

pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) direct: Option<f64>,
    pub(crate) gateway: Option<f64>,
    /// gateway - direct for latencies, gateway / direct for rates.
    pub(crate) delta: Option<String>,
    /// The value held against the target.
    pub(crate) judged: Option<f64>,
    pub(crate) unit: String,
    pub(crate) target: Target,
}

pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
    pub(crate) json: BTreeMap<String, Value>,
}

impl Report {
    pub(crate) fn new(plan: &Plan, gw: &Gateway) -> Self {
        let mut json = BTreeMap::new();
        json.insert(
            "mode".into(),
            json!(if plan.quick { "quick" } else { "full" }),
        );
        json.insert("machine".into(), machine());
        json.insert("plan".into(), json!(format!("{plan:?}")));
        json.insert(
            "gateway".into(),
            json!({
                "binary": GATEWAY_BIN,
                "pid": gw.pid,
                "open_file_limit": open_file_limit(&gw.pid.to_string()).0,
                "client_grpc_connections": CHANNELS,
            }),
        );
        Self {
            rows: Vec::new(),
            json,
        }
    }

    /// p50 / p90 / p99 of both sides and their difference; `target_p99_us` judges the added P99.
    pub(crate) fn latency(
        &mut self,
        key: &str,
        label: &str,
        direct: &[u64],
        gateway: &[u64],
        target_p99_us: Option<f64>,
    ) {
        let (mut d, mut g) = (direct.to_vec(), gateway.to_vec());
        let mut entry = serde_json::Map::new();
        for p in [50.0, 90.0, 99.0] {
            let (dp, gp) = (percentile(&mut d, p), percentile(&mut g, p));
            let added = gp - dp;
            let target = match target_p99_us {
                Some(t) if p == 99.0 => Target::AtMost(t),
                _ => Target::None,
            };
            self.rows.push(Row {
                label: format!("{label} p{p}"),
                direct: Some(dp),
                gateway: Some(gp),
                delta: Some(format!("{added:+.0} us")),
                judged: Some(added),
                unit: "us".into(),
                target,
            });
            entry.insert(
                format!("p{p}"),
                json!({"direct_us": dp, "gateway_us": gp, "added_us": added,
                       "meets_target": target.met(added)}),
            );
        }
        entry.insert(
            "samples".into(),
            json!({"direct": direct.len(), "gateway": gateway.len()}),
        );
        self.json.insert(key.into(), Value::Object(entry));
    }

    /// One figure: a gateway value (judged against `target`), optionally beside a direct value.
    pub(crate) fn figure(
        &mut self,
        key: &str,
        label: &str,
        direct: Option<f64>,
        gateway: Option<f64>,
        unit: &str,
        target: Target,
    ) {
        let ratio = match (direct, gateway) {
            (Some(d), Some(g)) if d > 0.0 => Some(g / d),
            _ => None,
        };
        let delta = ratio.map(|r| format!("x{r:.2}"));
        let judged = match target {
            Target::RatioAtLeast(_) => ratio,
            _ => gateway,
        };
        self.rows.push(Row {
            label: label.into(),
            direct,
            gateway,
            delta,
            judged,
            unit: unit.into(),
            target,
        });
        self.json.insert(
            key.into(),
            json!({"direct": direct, "gateway": gateway, "unit": unit,
                   "meets_target": judged.and_then(|v| target.met(v))}),
        );
    }

    pub(crate) fn extra(&mut self, key: &str, value: Value) {
        self.json.insert(key.into(), value);
    }

    pub(crate) fn finish(mut self, elapsed: Duration, path: &Path) -> Result<(), String> {
        self.json
            .insert("elapsed_s".into(), json!(elapsed.as_secs_f64()));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{:<46} {:>12} {:>12} {:>12}  {:<22} verdict",
            "figure", "direct", "gateway", "difference", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(118));
        let (mut met, mut missed) = (0, 0);
        for row in &self.rows {
            let num = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format_num(v, &row.unit));
            let verdict = match row.judged.and_then(|v| row.target.met(v)) {
                Some(true) => {
                    met += 1;
                    "MEETS"
                }
                Some(false) => {
                    missed += 1;
                    "MISSES"
                }
                None => "",
            };
            let _ = writeln!(
                out,
                "{:<46} {:>12} {:>12} {:>12}  {:<22} {verdict}",
                row.label,
                num(row.direct),
                num(row.gateway),
                row.delta.as_deref().unwrap_or(""),
                row.target.describe(&row.unit, row.delta.is_some()),
            );
        }
        let _ = writeln!(
            out,
            "\n{met} targets met, {missed} missed; {:.1} s; JSON: {}",
            elapsed.as_secs_f64(),
            path.display()
        );
        print!("{out}");
        self.json
            .insert("targets".into(), json!({"met": met, "missed": missed}));
        let text = serde_json::to_string_pretty(&self.json).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Target {
    pub(crate) fn met(self, v: f64) -> Option<bool> {
        match self {
            Target::None => None,
            Target::AtMost(t) => Some(v <= t),
            Target::AtLeast(t) | Target::RatioAtLeast(t) => Some(v >= t),
        }
    }

    pub(crate) fn describe(self, unit: &str, on_difference: bool) -> String {
        let what = if on_difference { "added " } else { "" };
        match self {
            Target::None => String::new(),
            Target::AtMost(t) => format!("{what}<= {} {unit}", format_num(t, unit)),
            Target::AtLeast(t) => format!("{what}>= {} {unit}", format_num(t, unit)),
            Target::RatioAtLeast(t) => format!(">= x{t:.2} of direct"),
        }
    }
}

pub(crate) fn format_num(v: f64, unit: &str) -> String {
    match unit {
        "us" if v.abs() < 10.0 => format!("{v:.2}"),
        "MiB" => format!("{v:.1}"),
        _ if v.abs() >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}
