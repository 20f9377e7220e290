//! A benchmark's figures: saved as a flat JSON object of named numbers (what
//! CI and scripts read) and printed as a table with units, goals and
//! meanings (what people read), followed by notes on how they were made.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// What a figure should be.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// No more than this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
}

impl Goal {
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(g) => value <= g,
            Goal::AtLeast(g) => value >= g,
        }
    }

    fn describe(self) -> String {
        match self {
            Goal::AtMost(g) => format!("<= {g}"),
            Goal::AtLeast(g) => format!(">= {g}"),
        }
    }
}

/// One measured number.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Its JSON key.
    pub key: String,
    /// The number.
    pub value: f64,
    /// Its unit, for the table.
    pub unit: &'static str,
    /// The goal, for figures that have one.
    pub goal: Option<Goal>,
    /// What it measures, for the table.
    pub about: String,
}

/// The figures and notes of one benchmark run.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
    notes: Vec<String>,
}

impl Report {
    /// Adds a figure without a goal.
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: f64,
        unit: &'static str,
        about: impl Into<String>,
    ) {
        self.push(key.into(), value, unit, None, about.into());
    }

    /// Adds a ratio with a goal.
    pub fn add_goal(
        &mut self,
        key: impl Into<String>,
        value: f64,
        goal: Goal,
        about: impl Into<String>,
    ) {
        self.push(key.into(), value, "ratio", Some(goal), about.into());
    }

    /// Adds a figure in `unit` with a goal.
    pub fn add_goal_in(
        &mut self,
        key: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: Goal,
        about: impl Into<String>,
    ) {
        self.push(key.into(), value, unit, Some(goal), about.into());
    }

    fn push(
        &mut self,
        key: String,
        value: f64,
        unit: &'static str,
        goal: Option<Goal>,
        about: String,
    ) {
        self.figures.push(Figure {
            key,
            value,
            unit,
            goal,
            about,
        });
    }

    /// How many goals the figures meet, out of how many they have.
    pub fn goals_met(&self) -> (usize, usize) {
        let goals: Vec<bool> = self
            .figures
            .iter()
            .filter_map(|f| f.goal.map(|g| g.met(f.value)))
            .collect();
        (goals.iter().filter(|&&met| met).count(), goals.len())
    }

    /// One report of several runs of the same benchmark: each figure is
    /// the mean of its runs, and a figure with a goal also gets `KEY_min`
    /// and `KEY_max`, so a noisy machine shows as a range. The runs' notes
    /// are kept, in order.
    ///
    /// # Errors
    ///
    /// When there are no runs, or they do not have the same figures in the
    /// same order.
    pub fn mean_of(runs: Vec<Report>) -> Result<Report> {
        let Some(first) = runs.first() else {
            bail!("no runs to take the mean of");
        };
        let mut mean = Report::default();
        for (i, figure) in first.figures.iter().enumerate() {
            let mut values = Vec::with_capacity(runs.len());
            for run in &runs {
                match run.figures.get(i) {
                    Some(f) if f.key == figure.key => values.push(f.value),
                    _ => bail!("the runs differ at figure {} ({})", i, figure.key),
                }
            }
            let value = values.iter().sum::<f64>() / values.len() as f64;
            mean.push(
                figure.key.clone(),
                value,
                figure.unit,
                figure.goal,
                figure.about.clone(),
            );
            if figure.goal.is_some() {
                for (end, v) in [
                    ("min", values.iter().copied().fold(f64::INFINITY, f64::min)),
                    (
                        "max",
                        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    ),
                ] {
                    let key = format!("{}_{end}", figure.key);
                    let about = format!("{end} of {} runs", values.len());
                    mean.push(key, v, figure.unit, None, about);
                }
            }
        }
        mean.notes = runs.into_iter().flat_map(|r| r.notes).collect();
        Ok(mean)
    }

    /// Adds a line printed under the table (the JSON holds numbers only).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The figures as a flat JSON object, rounded to three decimals.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut map = serde_json::Map::new();
        for f in &self.figures {
            let rounded = (f.value * 1000.0).round() / 1000.0;
            let Some(n) = serde_json::Number::from_f64(rounded) else {
                bail!("figure {} is not a finite number: {}", f.key, f.value);
            };
            map.insert(f.key.clone(), n.into());
        }
        Ok(map.into())
    }

    /// Writes [`to_json`](Self::to_json) to `path`, creating its directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&self.to_json()?)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The table and the notes, ready to print.
    pub fn table(&self) -> String {
        let width = self.figures.iter().map(|f| f.key.len()).max().unwrap_or(0);
        let mut out = String::new();
        for f in &self.figures {
            let goal = match f.goal {
                Some(g) if g.met(f.value) => format!("goal {} ok", g.describe()),
                Some(g) => format!("goal {} MISSED", g.describe()),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>10.3} {:<6} {:<18} {}",
                f.key, f.value, f.unit, goal, f.about
            );
        }
        let (met, goals) = self.goals_met();
        if goals > 0 {
            let _ = writeln!(out, "goals met: {met} of {goals}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_and_rounded() {
        let mut r = Report::default();
        r.add("a_ms", 1.23456, "ms", "a");
        r.add_goal("ratio", 0.5, Goal::AtMost(1.5), "b");
        r.note("a note stays out of the JSON");
        assert_eq!(
            r.to_json().unwrap(),
            serde_json::json!({"a_ms": 1.235, "ratio": 0.5})
        );
        assert!(r.table().contains("goal <= 1.5 ok"));
    }

    #[test]
    fn missed_goals_are_marked_and_nan_is_refused() {
        let mut r = Report::default();
        r.add_goal("ratio", 2.0, Goal::AtMost(1.5), "b");
        r.add_goal_in("mb", 50.0, "MB", Goal::AtMost(60.0), "d");
        assert!(r.table().contains("MISSED"));
        assert_eq!(r.goals_met(), (1, 2));
        assert!(r.table().contains("goals met: 1 of 2"));
        r.add("bad", f64::NAN, "s", "c");
        assert!(r.to_json().is_err());
    }

    #[test]
    fn runs_are_averaged_and_goals_get_their_range() {
        let run = |ratio: f64, ms: f64| {
            let mut r = Report::default();
            r.add_goal("ratio", ratio, Goal::AtMost(1.5), "b");
            r.add("a_ms", ms, "ms", "a");
            r.note(format!("ratio {ratio}"));
            r
        };
        let mean = Report::mean_of(vec![run(1.0, 10.0), run(2.0, 30.0)]).unwrap();
        assert_eq!(
            mean.to_json().unwrap(),
            serde_json::json!({"ratio": 1.5, "ratio_min": 1.0, "ratio_max": 2.0, "a_ms": 20.0})
        );
        assert_eq!(mean.goals_met(), (1, 1), "the range's ends carry no goal");
        assert!(mean.table().contains("note: ratio 1") && mean.table().contains("note: ratio 2"));

        let mut other = Report::default();
        other.add("a_ms", 1.0, "ms", "a");
        assert!(Report::mean_of(vec![run(1.0, 1.0), other]).is_err());
        assert!(Report::mean_of(Vec::new()).is_err());
    }
}
