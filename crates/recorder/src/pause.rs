//! Pausing: while recording is paused the capture thread never reads the
//! screen. It records a blank picture marked "RECORDING PAUSED" with the
//! reason instead, and every such frame carries the reason in the segment
//! ([`deskrec_vault::Frame::pause`]), so the timeline stays continuous and a
//! player can show the span and why.
//!
//! Two things can pause the recorder, and either is enough:
//! - the [`PauseSwitch`], which the agent sets (an agent's own pause, a
//!   pause the contact centre's systems asked for);
//! - a [`PauseProbe`] asked on every capture tick, before and after the
//!   picture is taken (a rule matching the window in front): a picture
//!   taken while the probe turned to "pause" is thrown away unseen.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use deskrec_capture::lettering::{GLYPH, draw_text, text_size};
use deskrec_capture::{CaptureError, FrameSize, YuvFrame};

/// The agent's pause: set with a reason, cleared to record again. Cheap to
/// clone; every clone is the same switch, and it outlives recorder
/// restarts.
///
/// It works both ways: the capture thread wakes as soon as the switch
/// changes (a pause takes effect at once, not at the next tick), and it
/// says when its first paused picture went to the encoder
/// ([`in_effect_since`](Self::in_effect_since)), from which moment the
/// screen is no longer recorded.
#[derive(Debug, Clone, Default)]
pub struct PauseSwitch(Arc<Switch>);

#[derive(Debug, Default)]
struct Switch {
    state: Mutex<SwitchState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SwitchState {
    reason: Option<Arc<str>>,
    /// Bumped by every change, so a waiting capture thread sees it.
    version: u64,
    /// When the recorder first handed on a paused picture since the
    /// switch last went from recording to paused.
    in_effect_since: Option<Instant>,
}

impl PauseSwitch {
    /// Pauses with `reason` (`Some`) or resumes (`None`).
    pub fn set(&self, reason: Option<&str>) {
        let reason = reason.map(Arc::from);
        let mut s = self.lock();
        if s.reason == reason {
            return;
        }
        // A new reason for a pause already in effect keeps the screen
        // unrecorded: only starting or ending a pause resets the time.
        if s.reason.is_none() || reason.is_none() {
            s.in_effect_since = None;
        }
        s.reason = reason;
        s.version += 1;
        drop(s);
        self.0.changed.notify_all();
    }

    /// The reason recording is paused, while it is.
    pub fn reason(&self) -> Option<Arc<str>> {
        self.lock().reason.clone()
    }

    /// While paused: when the recorder handed its first paused picture to
    /// the encoder (`None` until it has, for at most one capture tick).
    pub fn in_effect_since(&self) -> Option<Instant> {
        self.lock().in_effect_since
    }

    /// The capture thread handed on a paused picture at `at`.
    pub(crate) fn paused_picture_sent(&self, at: Instant) {
        let mut s = self.lock();
        if s.reason.is_some() {
            s.in_effect_since.get_or_insert(at);
        }
    }

    /// The change count, for [`wait_until`](Self::wait_until).
    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    /// Sleeps until `deadline`, or less when the switch changes after
    /// `seen` (a [`version`](Self::version)); true when it did.
    pub(crate) fn wait_until(&self, deadline: Instant, seen: u64) -> bool {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let (s, _) = self
            .0
            .changed
            .wait_timeout_while(self.lock(), timeout, |s| s.version == seen)
            .unwrap_or_else(|e| e.into_inner());
        s.version != seen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asked on every capture tick whether recording must pause now, and why.
/// It runs on the capture thread, so it must be quick (a few window-system
/// round trips).
pub trait PauseProbe: Send {
    /// `Some(reason)` while recording must pause.
    fn pause_reason(&mut self) -> Option<Arc<str>>;
}

/// What decides pauses for one recorder.
#[derive(Default)]
pub struct PauseControl {
    /// The agent's switch.
    pub switch: PauseSwitch,
    /// The rules, when the policy has any.
    pub probe: Option<Box<dyn PauseProbe>>,
    /// The probe's reason at the last check, when the switch was off: a
    /// pause the rules made.
    rule: Option<Arc<str>>,
}

impl PauseControl {
    /// Pauses by `switch`, and by `probe` when there is one.
    pub fn new(switch: PauseSwitch, probe: Option<Box<dyn PauseProbe>>) -> Self {
        Self {
            switch,
            probe,
            rule: None,
        }
    }

    /// The reason to pause now: the switch first, then the probe.
    pub(crate) fn reason(&mut self) -> Option<Arc<str>> {
        let switched = self.switch.reason();
        self.rule = match switched {
            Some(_) => None,
            None => self.probe.as_mut().and_then(|p| p.pause_reason()),
        };
        switched.or_else(|| self.rule.clone())
    }

    /// The reason of a pause the rules (not the switch) made, as of the
    /// last check.
    pub(crate) fn rule_reason(&self) -> Option<&str> {
        self.rule.as_deref()
    }
}

/// Background of the paused picture, BGRA: a dark grey that no one takes
/// for a black (failed) screen.
const BACKGROUND: [u8; 4] = [0x30, 0x30, 0x30, 0xff];
/// The lettering, BGRA.
const INK: [u8; 4] = [0xe0, 0xe0, 0xe0, 0xff];

/// The blank picture recorded while paused: `size`, grey, with "RECORDING
/// PAUSED" and the reason written across its middle.
pub(crate) fn paused_picture(
    size: FrameSize,
    reason: &str,
    at: Instant,
) -> Result<YuvFrame, CaptureError> {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut bgra: Vec<u8> = BACKGROUND.iter().copied().cycle().take(w * h * 4).collect();
    let reason = deskrec_vault::pause_reason(reason);
    let lines = ["RECORDING PAUSED".to_owned(), reason.to_owned()];
    // As large as fits: 8x8 glyphs scaled so the longest line takes at most
    // two thirds of the width.
    let longest = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let scale = (w * 2 / 3 / (longest * GLYPH)).clamp(1, 8);
    let line_h = (GLYPH + 2) * scale;
    let top = h.saturating_sub(line_h * lines.len()) / 2;
    for (i, line) in lines.iter().enumerate() {
        let left = w.saturating_sub(text_size(line, scale).0) / 2;
        draw_text(
            &mut bgra,
            (w, h),
            (left, top + i * line_h),
            scale,
            line,
            INK,
        );
    }
    YuvFrame::from_bgra(size, w * 4, &bgra, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paused_picture_is_grey_with_lettering_and_never_the_screen() {
        let size = FrameSize {
            width: 320,
            height: 180,
        };
        let a = paused_picture(size, "card_payment", Instant::now()).unwrap();
        let b = paused_picture(size, "card_payment", Instant::now()).unwrap();
        let c = paused_picture(size, "other", Instant::now()).unwrap();
        assert_eq!(a.size(), size);
        assert!(a.same_picture(&b), "the same pause draws the same picture");
        assert!(!a.same_picture(&c), "the reason is written on it");
        let (y, _, _) = a.planes();
        let (dark, light) = (
            y.iter().filter(|&&v| v < 64).count(),
            y.iter().filter(|&&v| v > 180).count(),
        );
        assert!(light > 200, "lettering drawn: {light} light samples");
        assert!(dark > y.len() / 2, "mostly background: {dark}");
    }

    #[test]
    fn the_switch_pauses_before_the_probe_is_asked() {
        struct Probe(u32);
        impl PauseProbe for Probe {
            fn pause_reason(&mut self) -> Option<Arc<str>> {
                self.0 += 1;
                Some("rule".into())
            }
        }
        let mut c = PauseControl::new(PauseSwitch::default(), Some(Box::new(Probe(0))));
        assert_eq!(c.reason().as_deref(), Some("rule"));
        assert_eq!(c.rule_reason(), Some("rule"));
        c.switch.set(Some("agent"));
        assert_eq!(c.reason().as_deref(), Some("agent"));
        assert_eq!(
            c.rule_reason(),
            None,
            "the switch's pause is not the rule's"
        );
        c.switch.set(None);
        c.probe = None;
        assert_eq!(c.reason(), None);
    }
}
