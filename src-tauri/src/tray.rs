//! The tray icon: one picture per [`IndicatorKind`], the state and its
//! reason in the tooltip, and a menu with the state line, "Open Deskrec",
//! "Diagnostics", the pause entries and — only where the policy allows
//! it — "Quit Deskrec".
//!
//! Pausing follows the engine's status: a "Pause recording" submenu with
//! one entry per reason the policy lets the agent pause for, while no
//! pause is in effect; "Resume recording" while the agent's own pause is;
//! neither while the contact centre's systems or a window rule pause
//! recording (the agent cannot end those: the state line says "Paused").
//!
//! The icons are the PNGs rendered from `assets/tray/*.svg`, embedded; the
//! size is picked for the display's scale (Windows draws tray icons at
//! 16 px per 100 %, Linux hosts at about 24 px), so no host has to resize
//! them. The icon is re-added when Explorer restarts or starts after the
//! app: tray-icon handles `TaskbarCreated` on Windows.

use deskrec_agent::{IndicatorKind, Status};
use deskrec_protocol::PauseSource;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Wry};

/// The tray icon's id.
const ID: &str = "deskrec";

/// Menu entry ids.
pub mod entry {
    /// The state line (disabled).
    pub const STATE: &str = "state";
    /// Opens the status window.
    pub const OPEN: &str = "open";
    /// Opens the Diagnostics view.
    pub const DIAGNOSTICS: &str = "diagnostics";
    /// Quits (only where the policy allows it).
    pub const QUIT: &str = "quit";
    /// The "Pause recording" submenu.
    pub const PAUSE: &str = "pause";
    /// Starts of the submenu's entries' ids: the reason follows
    /// (`pause:card_payment`).
    pub const PAUSE_FOR: &str = "pause:";
    /// Ends the agent's own pause.
    pub const RESUME: &str = "resume";
}

/// The pause entries the menu offers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PauseEntries {
    /// None: the policy gives no reason, or someone else paused.
    None,
    /// "Pause recording", one entry per reason.
    Pause(Vec<String>),
    /// "Resume recording": the agent's own pause is in effect.
    Resume,
}

impl PauseEntries {
    fn of(status: &Status) -> Self {
        match &status.pause {
            Some(p) if p.source == PauseSource::Agent => Self::Resume,
            // The contact centre's systems or a window rule paused: only
            // they end it (and a pause of the agent's own on top could
            // not be resumed until theirs ended).
            Some(_) => Self::None,
            None if status.pause_reasons.is_empty() => Self::None,
            None => Self::Pause(status.pause_reasons.clone()),
        }
    }
}

/// What the menu holds beyond its fixed entries: it is built again when
/// this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    allow_quit: bool,
    pause: PauseEntries,
}

impl Shape {
    fn of(status: &Status) -> Self {
        Self {
            allow_quit: status.allow_quit,
            pause: PauseEntries::of(status),
        }
    }
}

/// `text` as a menu shows it: `&` marks an access key in menu labels
/// (muda), so one meant as text is doubled.
fn menu_text(text: &str) -> String {
    text.replace('&', "&&")
}

/// The sizes rendered in `assets/tray/png`.
const SIZES: [u32; 7] = [16, 20, 24, 32, 40, 48, 64];

macro_rules! icons {
    ($name:literal) => {
        [
            include_bytes!(concat!("../../assets/tray/png/", $name, "-16.png")).as_slice(),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-20.png")),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-24.png")),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-32.png")),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-40.png")),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-48.png")),
            include_bytes!(concat!("../../assets/tray/png/", $name, "-64.png")),
        ]
    };
}

/// The PNG of `kind` nearest above `px` pixels.
pub fn png(kind: IndicatorKind, px: u32) -> &'static [u8] {
    let set: [&'static [u8]; 7] = match kind {
        IndicatorKind::Recording => icons!("recording"),
        IndicatorKind::NotRecording => icons!("not-recording"),
        IndicatorKind::Offline => icons!("offline"),
        IndicatorKind::Attention => icons!("attention"),
    };
    let i = SIZES
        .iter()
        .position(|&s| s >= px)
        .unwrap_or(SIZES.len() - 1);
    set[i]
}

/// The tray as the app keeps it: what it shows now, so it is only
/// touched when something changed.
pub struct Tray {
    icon: TrayIcon<Wry>,
    state_line: MenuItem<Wry>,
    /// The pixel size of the icons on this display.
    px: u32,
    shown: Option<(IndicatorKind, String, Shape)>,
    /// A standing note under the state (the window cannot open).
    note: Option<String>,
}

impl Tray {
    /// Creates the icon with its menu.
    pub fn create(app: &AppHandle, status: &Status) -> tauri::Result<Self> {
        let scale = app
            .primary_monitor()
            .ok()
            .flatten()
            .map_or(1.0, |m| m.scale_factor());
        let base = if cfg!(windows) { 16.0 } else { 24.0 };
        let px = (base * scale).round() as u32;
        let state_line = MenuItem::with_id(
            app,
            entry::STATE,
            menu_text(&status.indicator.headline),
            false,
            None::<&str>,
        )?;
        let menu = menu(app, &state_line, &Shape::of(status))?;
        let icon = TrayIconBuilder::with_id(ID)
            .icon(Image::from_bytes(png(status.indicator.kind, px))?)
            .tooltip(tooltip(status, None))
            .menu(&menu)
            .show_menu_on_left_click(false)
            .on_menu_event(|app, event| crate::app::menu_clicked(app, event.id().as_ref()))
            .on_tray_icon_event(|icon, event| {
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = event
                {
                    crate::window::open(icon.app_handle(), crate::window::View::Status);
                }
            })
            .build(app)?;
        let mut tray = Self {
            icon,
            state_line,
            px,
            shown: None,
            note: None,
        };
        tray.remember(status);
        Ok(tray)
    }

    /// Shows `status` if it differs from what is shown.
    pub fn show(&mut self, app: &AppHandle, status: &Status) {
        let now = (
            status.indicator.kind,
            tooltip(status, self.note.as_deref()),
            Shape::of(status),
        );
        let Some((kind, tip, shape)) = self.shown.clone() else {
            return;
        };
        let result = (|| -> tauri::Result<()> {
            if kind != now.0 {
                self.icon
                    .set_icon(Some(Image::from_bytes(png(now.0, self.px))?))?;
            }
            if tip != now.1 {
                // What the user sees, in the log the diagnostics carry.
                tracing::info!(tooltip = %now.1, "tray shows");
                self.icon.set_tooltip(Some(&now.1))?;
                self.state_line
                    .set_text(menu_text(&status.indicator.headline))?;
            }
            if shape != now.2 {
                tracing::info!(shape = ?now.2, "tray menu rebuilt");
                self.icon
                    .set_menu(Some(menu(app, &self.state_line, &now.2)?))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.remember(status),
            Err(e) => tracing::warn!(error = %e, "cannot update the tray icon"),
        }
    }

    fn remember(&mut self, status: &Status) {
        self.shown = Some((
            status.indicator.kind,
            tooltip(status, self.note.as_deref()),
            Shape::of(status),
        ));
    }

    /// Adds a standing note to the tooltip (one that no state change
    /// clears), and shows it with `status`.
    pub fn add_note(&mut self, app: &AppHandle, note: &str, status: &Status) {
        self.note = Some(note.to_owned());
        self.show(app, status);
    }
}

/// The tooltip: the state and the reason.
fn tooltip(status: &Status, note: Option<&str>) -> String {
    let mut tip = format!(
        "Deskrec: {}\n{}",
        status.indicator.headline, status.indicator.detail
    );
    if let Some(note) = note {
        tip.push('\n');
        tip.push_str(note);
    }
    tip
}

fn menu(app: &AppHandle, state_line: &MenuItem<Wry>, shape: &Shape) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::with_items(app, &[state_line, &PredefinedMenuItem::separator(app)?])?;
    match &shape.pause {
        PauseEntries::None => {}
        PauseEntries::Pause(reasons) => {
            let pause = Submenu::with_id(app, entry::PAUSE, "Pause recording", true)?;
            for reason in reasons {
                pause.append(&MenuItem::with_id(
                    app,
                    format!("{}{reason}", entry::PAUSE_FOR),
                    menu_text(&deskrec_agent::pause_label(reason)),
                    true,
                    None::<&str>,
                )?)?;
            }
            menu.append(&pause)?;
        }
        PauseEntries::Resume => menu.append(&MenuItem::with_id(
            app,
            entry::RESUME,
            "Resume recording",
            true,
            None::<&str>,
        )?)?,
    }
    menu.append(&MenuItem::with_id(
        app,
        entry::OPEN,
        "Open Deskrec",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(
        app,
        entry::DIAGNOSTICS,
        "Diagnostics",
        true,
        None::<&str>,
    )?)?;
    if shape.allow_quit {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        menu.append(&MenuItem::with_id(
            app,
            entry::QUIT,
            "Quit Deskrec",
            true,
            None::<&str>,
        )?)?;
    }
    Ok(menu)
}
