//! Collecting figures and printing them.

use std::time::Duration;

/// One measured figure.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub note: String,
}

pub struct Report {
    suite: String,
    figures: Vec<Figure>,
}

impl Report {
    pub fn new(suite: &str) -> Self {
        Report {
            suite: suite.to_string(),
            figures: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        note: impl Into<String>,
    ) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            note: note.into(),
        });
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "\n## {}\n\n| figure | value | unit | note |\n|---|---:|---|---|\n",
            self.suite
        );
        for f in &self.figures {
            out.push_str(&format!(
                "| {} | {:.3} | {} | {} |\n",
                f.name, f.value, f.unit, f.note
            ));
        }
        out
    }

    pub fn write_json(&self, path: &str) -> std::io::Result<()> {
        let figures: Vec<serde_json::Value> = self
            .figures
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "value": f.value, "unit": f.unit, "note": f.note}))
            .collect();
        let doc = serde_json::json!({"suite": self.suite, "figures": figures});
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc).expect("json"))
    }
}

/// The median of some durations, in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    percentile_ms(samples, 0.5)
}

/// The `p` quantile (nearest rank) of some durations, in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    samples.sort();
    let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1].as_secs_f64() * 1000.0
}

/// Peak resident memory of this process since the last reset, in bytes (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident memory counter (Linux; ignored elsewhere).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
