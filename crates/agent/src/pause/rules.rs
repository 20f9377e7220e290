//! Rule pauses: the policy's window patterns, matched on every capture
//! tick against the window in front ([`ForegroundWindow`]). Titles are
//! matched here and go nowhere: not to the log, the database or the server.

use std::sync::Arc;

use deskrec_capture::{ForegroundWindow, WindowInfo};
use deskrec_protocol::PauseRule;
use deskrec_recorder::PauseProbe;
use regex::{Regex, RegexBuilder};

use crate::AgentError;

/// Compiled patterns are bounded so a hostile or careless policy cannot
/// make the capture thread slow.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// The reason recorded while the window in front cannot be read: the
/// rules cannot tell whether a protected window is showing, so the screen
/// is not recorded (fail closed).
pub(crate) const RULES_UNAVAILABLE: &str = "pause_rules_unavailable";

/// One rule, compiled.
struct Compiled {
    reason: Arc<str>,
    title: Option<Regex>,
    class: Option<Regex>,
    process: Option<Regex>,
}

impl Compiled {
    fn matches(&self, w: &WindowInfo) -> bool {
        let ok = |re: &Option<Regex>, s: &str| re.as_ref().is_none_or(|re| re.is_match(s));
        ok(&self.title, &w.title) && ok(&self.class, &w.class) && ok(&self.process, &w.process)
    }
}

/// The policy's rules with the probe they ask.
pub(crate) struct WindowRules {
    rules: Vec<Compiled>,
    probe: Box<dyn ForegroundWindow>,
    /// Whether the last probe failed (logged once per failure streak).
    failing: bool,
}

impl WindowRules {
    /// Compiles `rules` (`None` when there are none: nothing to probe).
    ///
    /// # Errors
    ///
    /// A pattern that does not compile, or a rule with no pattern.
    pub fn new(
        rules: &[PauseRule],
        probe: Box<dyn ForegroundWindow>,
    ) -> Result<Option<Self>, AgentError> {
        if rules.is_empty() {
            return Ok(None);
        }
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i, r))
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            rules,
            probe,
            failing: false,
        }))
    }

    /// The first matching rule's reason for `window`.
    fn reason_for(&self, window: &WindowInfo) -> Option<Arc<str>> {
        self.rules
            .iter()
            .find(|r| r.matches(window))
            .map(|r| r.reason.clone())
    }
}

/// Checks a rule's patterns; the agent refuses a policy whose rules do
/// not compile rather than record what they were meant to hide.
fn compile(i: usize, r: &PauseRule) -> Result<Compiled, AgentError> {
    let re = |p: &Option<String>| -> Result<Option<Regex>, AgentError> {
        p.as_deref()
            .map(|p| {
                RegexBuilder::new(p)
                    .case_insensitive(true)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|source| AgentError::PauseRulePattern { index: i, source })
            })
            .transpose()
    };
    let c = Compiled {
        reason: Arc::from(r.reason.as_str()),
        title: re(&r.title)?,
        class: re(&r.class)?,
        process: re(&r.process)?,
    };
    if c.title.is_none() && c.class.is_none() && c.process.is_none() {
        return Err(AgentError::PauseRuleEmpty { index: i });
    }
    Ok(c)
}

impl PauseProbe for WindowRules {
    fn pause_reason(&mut self) -> Option<Arc<str>> {
        match self.probe.foreground() {
            Ok(window) => {
                self.failing = false;
                window.and_then(|w| self.reason_for(&w))
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "cannot tell which window is in front: recording paused");
                }
                self.failing = true;
                Some(Arc::from(RULES_UNAVAILABLE))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskrec_capture::CaptureError;

    struct Fixed(Result<Option<WindowInfo>, ()>);
    impl ForegroundWindow for Fixed {
        fn foreground(&mut self) -> Result<Option<WindowInfo>, CaptureError> {
            self.0
                .clone()
                .map_err(|()| CaptureError::InvalidSettings("gone".into()))
        }
    }

    fn window(title: &str, class: &str, process: &str) -> WindowInfo {
        WindowInfo {
            title: title.into(),
            class: class.into(),
            process: process.into(),
        }
    }

    fn rule(reason: &str, title: Option<&str>, process: Option<&str>) -> PauseRule {
        PauseRule {
            reason: reason.into(),
            title: title.map(Into::into),
            class: None,
            process: process.map(Into::into),
        }
    }

    fn reason(rules: &[PauseRule], w: Result<Option<WindowInfo>, ()>) -> Option<String> {
        let mut r = WindowRules::new(rules, Box::new(Fixed(w)))
            .unwrap()
            .unwrap();
        r.pause_reason().map(|r| r.to_string())
    }

    #[test]
    fn every_pattern_of_a_rule_must_match_case_insensitively() {
        let rules = [
            rule(
                "card_payment",
                Some("payment|checkout"),
                Some(r"^chrome(\.exe)?$"),
            ),
            rule("payterm", None, Some("^payterm")),
        ];
        let r = |w| reason(&rules, Ok(Some(w)));
        assert_eq!(
            r(window("Stripe CHECKOUT", "x", "chrome.exe")).as_deref(),
            Some("card_payment")
        );
        assert_eq!(r(window("Stripe checkout", "x", "firefox")), None);
        assert_eq!(r(window("Mail", "x", "chrome")), None);
        assert_eq!(r(window("", "", "PayTerm.exe")).as_deref(), Some("payterm"));
        assert_eq!(reason(&rules, Ok(None)), None);
    }

    #[test]
    fn a_probe_that_fails_pauses_recording() {
        let rules = [rule("card", Some("pay"), None)];
        assert_eq!(reason(&rules, Err(())).as_deref(), Some(RULES_UNAVAILABLE));
    }

    /// The real probe (`GetForegroundWindow` and the window's process) on
    /// Windows and under wine (`cargo xtask windows`), with a window of a
    /// known title in front: a rule pauses while its title matches, not
    /// before and not after; class and process patterns match the same
    /// window.
    #[cfg(windows)]
    #[test]
    fn the_window_in_front_pauses_by_its_rule_on_windows() {
        use deskrec_capture::testing::{TEST_WINDOW_CLASS, TestWindow};

        let exe = std::env::current_exe().expect("this exe's path");
        let exe = exe
            .file_name()
            .and_then(|n| n.to_str())
            .expect("an exe name");
        let probe = || deskrec_capture::foreground_window().expect("a probe on Windows");
        let title_and_process = [rule(
            "card_payment",
            Some("card payment|checkout"),
            Some(&format!("^{}$", regex::escape(exe))),
        )];
        let mut by_title = WindowRules::new(&title_and_process, probe())
            .unwrap()
            .unwrap();
        let by_class = [PauseRule {
            class: Some(format!("^{TEST_WINDOW_CLASS}$")),
            ..rule("payterm", None, None)
        }];
        let mut by_class = WindowRules::new(&by_class, probe()).unwrap().unwrap();
        let reason = |rules: &mut WindowRules| rules.pause_reason().map(|r| r.to_string());

        let window = TestWindow::show("Customer record — Jane Doe");
        window.bring_to_front();
        assert_eq!(reason(&mut by_title), None);
        assert_eq!(reason(&mut by_class).as_deref(), Some("payterm"));

        window.set_title("Card Payment — order 1234");
        assert_eq!(reason(&mut by_title).as_deref(), Some("card_payment"));

        window.set_title("Customer record — Jane Doe");
        assert_eq!(reason(&mut by_title), None);

        drop(window);
        assert_eq!(reason(&mut by_class), None);
    }

    #[test]
    fn bad_rules_are_refused() {
        let probe = || Box::new(Fixed(Ok(None)));
        assert!(WindowRules::new(&[rule("x", Some("("), None)], probe()).is_err());
        assert!(WindowRules::new(&[rule("x", None, None)], probe()).is_err());
        assert!(WindowRules::new(&[], probe()).unwrap().is_none());
    }
}
