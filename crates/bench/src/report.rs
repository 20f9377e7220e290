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
}
