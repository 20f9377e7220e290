//! The HTML of the supervisor pages, with `maud`: templates are Rust
//! expressions checked at compile time, and every interpolated value is
//! HTML-escaped unless explicitly marked otherwise (nothing here is).
//! The pages are plain documents and forms; the one script is the contact
//! page's player (`player.js`, served from this origin), and every page
//! but the player works without it.

use deskrec_vault::utc;
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::queries::{
    ContactDetail, ContactPage, ContactRow, ContactSearch, RecordingRow, STATUSES,
};
use crate::audio::StoredAudio;
use crate::auth::Supervisor;
use crate::enrollment::Device;

pub(crate) const STYLE: &str = "
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#24364b;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff}header form{margin-left:auto}
main{padding:1em 1.2em;max-width:75em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}
.status{font-weight:600}.uploaded{color:#176b2c}.pending{color:#8a6d00}.failed,.unrecoverable,.error{color:#a31515}
.reason{color:#555;font-size:90%}video{max-width:100%;background:#000}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
form.filter{display:flex;gap:.8em;margin-bottom:1em;align-items:end}
#contact-player{margin:1em 0}#contact-player audio{width:100%;margin-top:.4em}
.controls{display:flex;gap:.8em;align-items:center;margin:.4em 0}#seek{flex:1}
#bar{position:relative;height:12px;background:#dde3ea;margin:.2em 0}
.marker{position:absolute;top:0;height:12px;width:2px;margin-left:-1px;background:#24364b;cursor:pointer}
.marker.gap{margin-left:0;background:#a31515;opacity:.5}.marker.pause{margin-left:0;background:#8a6d00;opacity:.6}.missing{color:#a31515}
";

/// A whole page: `title`, the navigation for `user` (none on the login
/// page), then `body`.
fn layout(title: &str, user: Option<&Supervisor>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Deskrec" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "Deskrec" }
                    @if let Some(u) = user {
                        a href="/" { "Contacts" }
                        a href="/devices" { "Devices" }
                        form method="post" action="/logout" {
                            (u.name) " (" (u.windows_login) ") "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page with one message, for errors.
pub fn message(title: &str, text: &str) -> Markup {
    layout(title, None, html! { p { (text) } })
}

/// The login form, with the last attempt's error and login.
pub fn login(error: Option<&str>, login: &str) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/login" {
                p { label { "Windows login" br; input name="login" value=(login) autocomplete="username" required autofocus; } }
                p { label { "Password" br; input name="password" type="password" autocomplete="current-password" required; } }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// `/`: the contact search and one page of what it found.
pub fn contacts(
    user: &Supervisor,
    f: &ContactSearch,
    page: &ContactPage,
    error: Option<&str>,
) -> Markup {
    // The same search, from the page after `before` (none: the newest).
    let link = |before: Option<String>| {
        let mut q = vec![];
        for (k, v) in [
            ("login", &f.login),
            ("queue", &f.queue),
            ("direction", &f.direction),
            ("status", &f.status),
            ("from", &f.from),
            ("to", &f.to),
        ] {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", encode(v.trim())));
            }
        }
        if let Some(b) = before {
            q.push(format!("before={}", encode(&b)));
        }
        format!("/?{}", q.join("&"))
    };
    layout(
        "Contacts",
        Some(user),
        html! {
            form.filter method="get" action="/" {
                label { "Windows login" br; input name="login" value=(f.login); }
                label { "Queue" br; input name="queue" value=(f.queue); }
                label { "Direction" br; input name="direction" value=(f.direction); }
                label { "Recording" br;
                    select name="status" {
                        option value="" selected[f.status.is_empty()] { "any" }
                        @for s in STATUSES {
                            option value=(s) selected[f.status == s] { (s) }
                        }
                    }
                }
                label { "From (UTC)" br; input name="from" type="datetime-local" value=(f.from); }
                label { "To (UTC)" br; input name="to" type="datetime-local" value=(f.to); }
                button type="submit" { "Search" }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @if page.contacts.is_empty() {
                p { "No contacts." }
            } @else {
                table {
                    thead { tr { th { "Start (UTC)" } th { "Duration" } th { "Agent" } th { "Queue" } th { "Direction" } th { "Screen recording" } } }
                    tbody {
                        @for c in &page.contacts {
                            tr {
                                td { a href=(contact_href(&c.contact_id)) { (utc::for_people(c.start_at)) } }
                                td { (duration(c.end_at - c.start_at)) }
                                td { (agent(c)) }
                                td { (c.queue.as_deref().unwrap_or("")) }
                                td { (c.direction.as_deref().unwrap_or("")) }
                                td { (status(c)) }
                            }
                        }
                    }
                }
            }
            p {
                @if !f.before.is_empty() { a href=(link(None)) { "← newest" } " " }
                @if let Some(next) = page.next { a href=(link(Some(next.to_string()))) { "older →" } }
            }
        },
    )
}

/// `/contacts/{id}`: details and, once uploaded, the player and the call
/// audio.
pub fn contact(user: &Supervisor, detail: &ContactDetail) -> Markup {
    let (c, rec, audio) = (
        &detail.contact,
        detail.recording.as_ref(),
        detail.audio.as_ref(),
    );
    layout(
        &format!("Contact {}", c.contact_id),
        Some(user),
        html! {
            dl {
                dt { "Agent" } dd { (agent(c)) }
                dt { "Start (UTC)" } dd { (utc::for_people(c.start_at)) }
                dt { "End (UTC)" } dd { (utc::for_people(c.end_at)) }
                dt { "Duration" } dd { (duration(c.end_at - c.start_at)) }
                dt { "Queue" } dd { (c.queue.as_deref().unwrap_or("—")) }
                dt { "Direction" } dd { (c.direction.as_deref().unwrap_or("—")) }
                dt { "Screen recording" } dd { (status(c)) }
                @if let Some(r) = rec {
                    dt { "Recorded on" } dd { (r.host.as_deref().unwrap_or("?")) " (" (r.device_id) ")" }
                    dt { "Stored" } dd { (utc::for_people(r.stored_at)) ", " (bytes(r.bytes)) }
                    dt { "Shows" } dd { (utc::for_people(r.trim_start)) " – " (utc::for_people(r.trim_end)) }
                }
            }
            (player(c, rec, audio))
            @if let Some(a) = audio {
                p.reason { "Call audio: " (a.info.codec) ", " (a.info.sample_rate) " Hz, " (duration(a.info.duration_us)) "." }
            }
            p {
                @if rec.is_some() && c.disposal.is_none() { a href=(download_href(&c.contact_id)) download { "Download (screen and call audio, MP4)" } }
            }
        },
    )
}

/// Seconds, for the player's data attributes.
fn secs(micros: i64) -> String {
    format!("{:.3}", micros as f64 / 1e6)
}

/// The player: the screen and the call audio on the contact's timeline,
/// with its markers (`player.js` runs it). Says what is missing and why.
fn player(c: &ContactRow, rec: Option<&RecordingRow>, audio: Option<&StoredAudio>) -> Markup {
    let length = c.end_at - c.start_at;
    // Expired or erased: nothing plays, whatever rows an unfinished
    // disposal still holds.
    let (rec, audio) = match c.disposal {
        Some(_) => (None, None),
        None => (rec, audio),
    };
    let video = rec.filter(|_| c.status == "uploaded");
    let video_at = video.map_or(0, |r| (r.trim_start - c.start_at).max(0));
    let video_end = video.map_or(0, |r| (r.trim_end - c.start_at).min(length));
    // Where the timeline has no screen: before and after what the
    // recording shows.
    let mut gaps = vec![];
    if video.is_some() && video_at > 0 {
        gaps.push((0, video_at));
    }
    if video.is_some() && video_end < length {
        gaps.push((video_end, length));
    }
    // And inside it, where the agent paused or stopped recording.
    for [from, until] in video.map(|r| r.gaps.as_slice()).unwrap_or_default() {
        let (from, until) = ((from - c.start_at).max(0), (until - c.start_at).min(length));
        if from < until {
            gaps.push((from, until));
        }
    }
    // Where recording was paused (the recording shows a "paused" picture),
    // with why.
    let pauses: Vec<(i64, i64, &str)> = video
        .map(|r| r.pauses.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let from = (p.range.start - c.start_at).max(0);
            (
                from,
                (p.range.end - c.start_at).min(length),
                p.reason.as_str(),
            )
        })
        .filter(|(from, until, _)| from < until)
        .collect();
    html! {
        section #contact-player data-duration=(secs(length)) data-video-at=(secs(video_at)) data-audio-at="0" {
            @if video.is_some() {
                video preload="auto" controls src=(video_href(&c.contact_id)) {
                    "This browser cannot play the recording."
                }
            } @else {
                p.missing { "No screen recording: " (status(c)) }
            }
            @if audio.is_some() {
                audio preload="auto" controls src=(audio_href(&c.contact_id)) {
                    "This browser cannot play the call audio."
                }
            } @else if c.disposal.is_some() {
                p.missing { "No call audio: " (status(c)) }
            } @else {
                p.missing { "No call audio: none was imported for this contact." }
            }
            @if video.is_some() || audio.is_some() {
                div.controls {
                    button #play type="button" { "Play" }
                    input #seek type="range" min="0" step="0.01" value="0" aria-label="Position";
                    span #clock { "0:00 / " (duration(length)) }
                    label { "Speed "
                        select #rate {
                            @for r in ["0.5", "0.75", "1", "1.25", "1.5", "2"] {
                                option value=(r) selected[r == "1"] { (r) "×" }
                            }
                        }
                    }
                }
                div #bar {
                    span.marker.start data-at="0" title=(format!("Contact start {}", utc::for_people(c.start_at))) {}
                    span.marker.end data-at=(secs(length)) title=(format!("Contact end {}", utc::for_people(c.end_at))) {}
                    @for (from, until) in &gaps {
                        span.marker.gap data-at=(secs(*from)) data-until=(secs(*until)) title="No screen recording" {}
                    }
                    @for (from, until, reason) in &pauses {
                        span.marker.pause data-at=(secs(*from)) data-until=(secs(*until)) data-reason=(reason)
                            title=(format!("Recording paused: {reason}")) {}
                    }
                }
                p.reason { "Keys: space play/pause, ← → 5 s, j l 10 s, < > speed, Home End." }
                script src="/static/player.js" {}
            }
        }
    }
}

/// Where a PC stands, as the devices page shows and filters it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Connected, and its last heartbeat said it is recording.
    Recording,
    /// Connected with someone logged on, and not recording: the agent
    /// a supervisor must look at. The heartbeat says why.
    NotRecording,
    /// Connected with no one logged on.
    Idle,
    /// Not connected now.
    Offline,
    /// Revoked: its credential is refused.
    Revoked,
}

impl DeviceState {
    /// Every state, in the order the filter lists them.
    pub const ALL: [DeviceState; 5] = [
        DeviceState::NotRecording,
        DeviceState::Recording,
        DeviceState::Idle,
        DeviceState::Offline,
        DeviceState::Revoked,
    ];

    /// The state of `d`, connected now or not.
    pub fn of(d: &Device, connected: bool) -> Self {
        let recording = d
            .last_status
            .as_ref()
            .and_then(|s| s.get("recording"))
            .and_then(|v| v.as_str());
        let logged_on = d.last_login.as_deref().is_some_and(|l| !l.is_empty());
        if d.revoked_at.is_some() {
            DeviceState::Revoked
        } else if !connected {
            DeviceState::Offline
        } else if recording == Some("recording") {
            DeviceState::Recording
        } else if logged_on {
            DeviceState::NotRecording
        } else {
            DeviceState::Idle
        }
    }

    /// The name in `?state=`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Recording => "recording",
            DeviceState::NotRecording => "not_recording",
            DeviceState::Idle => "idle",
            DeviceState::Offline => "offline",
            DeviceState::Revoked => "revoked",
        }
    }

    /// The state named `s`; `None` (every device) for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    fn label(self) -> &'static str {
        match self {
            DeviceState::Recording => "recording",
            DeviceState::NotRecording => "logged on, not recording",
            DeviceState::Idle => "no one logged on",
            DeviceState::Offline => "offline",
            DeviceState::Revoked => "revoked",
        }
    }

    fn class(self) -> &'static str {
        match self {
            DeviceState::Recording => "uploaded",
            DeviceState::NotRecording | DeviceState::Revoked => "failed",
            DeviceState::Idle | DeviceState::Offline => "pending",
        }
    }
}

/// `/devices`: the enrolled PCs in `wanted` state (all when `None`).
pub fn devices(
    user: &Supervisor,
    wanted: Option<DeviceState>,
    devices: &[(Device, DeviceState)],
) -> Markup {
    layout(
        "Devices",
        Some(user),
        html! {
            form.filter method="get" action="/devices" {
                label { "State" br;
                    select name="state" {
                        option value="" selected[wanted.is_none()] { "any" }
                        @for s in DeviceState::ALL {
                            option value=(s.name()) selected[wanted == Some(s)] { (s.label()) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            @if devices.is_empty() {
                p { "No devices." }
            } @else {
                table {
                    thead { tr { th { "Host" } th { "State" } th { "Last login" } th { "Last heartbeat" } th { "Agent" } th { "Last status" } } }
                    tbody {
                        @for (d, state) in devices {
                            tr {
                                td { (d.host) br; span.reason { (d.id) } }
                                td { span.status.(state.class()) { (state.label()) } }
                                td { (d.last_login.as_deref().filter(|l| !l.is_empty()).unwrap_or("—")) }
                                td {
                                    @if let Some(t) = d.last_seen_at { (utc::for_people(t)) }
                                    @else { "never connected" }
                                }
                                td { (d.agent_version.as_deref().unwrap_or("—")) }
                                td { (last_status(d.last_status.as_ref())) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A heartbeat's status (see `docs/protocol.md`), field by field; fields
/// this version does not know are left out rather than guessed at.
fn last_status(status: Option<&serde_json::Value>) -> Markup {
    let Some(s) = status else {
        return html! { "—" };
    };
    let num = |k: &str| s.get(k).and_then(serde_json::Value::as_i64);
    let recording = s.get("recording").and_then(|v| v.as_str()).unwrap_or("?");
    let errors: Vec<&str> = s
        .get("errors")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_default();
    html! {
        span.status.(if recording == "recording" { "uploaded" } else if recording == "error" { "error" } else { "pending" }) { (recording) }
        @if let Some(n) = num("segments_on_disk") { br; (n) " segments on disk" }
        @if let Some(n) = num("uploads_queued") { br; (n) " uploads queued" }
        @if let Some(n) = num("disk_free_bytes") { br; (bytes(n)) " free" }
        @for e in errors { br; span.error { (e) } }
    }
}

fn agent(c: &ContactRow) -> Markup {
    html! {
        @if let Some(n) = &c.agent_name { (n) " " span.reason { "(" (c.windows_login) ")" } }
        @else { (c.windows_login) }
    }
}

/// The recording's status, or what became of it: `expired` or `erased`,
/// by whom, when and why.
fn status(c: &ContactRow) -> Markup {
    if let Some(d) = &c.disposal {
        let what = if d.state.is_expiry() {
            "expired"
        } else {
            "erased"
        };
        return html! {
            span.status.(what) { (what) }
            " " span.reason {
                "by " (d.by) ", " (utc::for_people(d.at))
                @if let Some(r) = &d.reason { ": " (r) }
            }
        };
    }
    html! {
        span.status.(c.status) { (c.status) }
        @if let Some(r) = &c.status_reason { " " span.reason { (r) } }
    }
}

/// The contact page's path.
pub fn contact_href(contact_id: &str) -> String {
    format!("/contacts/{}", encode(contact_id))
}

/// The download's path.
pub fn download_href(contact_id: &str) -> String {
    format!("/api/v1/recordings/{}/download.mp4", encode(contact_id))
}

/// The call audio's path.
pub fn audio_href(contact_id: &str) -> String {
    format!("/api/v1/recordings/{}/audio", encode(contact_id))
}

/// The video endpoint's path.
pub fn video_href(contact_id: &str) -> String {
    format!("/api/v1/recordings/{}/video.mp4", encode(contact_id))
}

/// Percent-encodes a path segment or query value. Contact ids come from
/// the ACD and may hold anything, `/` and `?` included.
fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A duration (µs) as `4:05` or `1:02:03`, with tenths under a minute.
fn duration(micros: i64) -> String {
    let tenths = micros.max(0) / 100_000;
    let (s, m, h) = (tenths / 10 % 60, tenths / 600 % 60, tenths / 36_000);
    match (h, m) {
        (0, 0) => format!("{}.{} s", s, tenths % 10),
        (0, _) => format!("{m}:{s:02}"),
        _ => format!("{h}:{m:02}:{s:02}"),
    }
}

/// A size as `1.5 MiB`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(3_800_000), "3.8 s");
        assert_eq!(duration(245_000_000), "4:05");
        assert_eq!(duration(3_723_000_000), "1:02:03");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
    }

    #[test]
    fn the_player_marks_the_contact_every_stretch_without_screen_and_every_pause() {
        let user = Supervisor {
            user_id: 1,
            name: "Vic".into(),
            windows_login: "CORP\\vic".into(),
            permissions: Default::default(),
        };
        let s = 1_000_000;
        let c = ContactRow {
            id: 1,
            contact_id: "c-1".into(),
            windows_login: "CORP\\ann".into(),
            agent_name: None,
            start_at: 100 * s,
            end_at: 110 * s,
            direction: None,
            queue: None,
            status: "uploaded".into(),
            status_reason: None,
            disposal: None,
        };
        // The recording shows 101 s to 109 s, with nothing from 104 to 106.
        let rec = RecordingRow {
            device_id: "dev-1".into(),
            host: None,
            bytes: 1,
            trim_start: 101 * s,
            trim_end: 109 * s,
            stored_at: 0,
            sha256: "00".into(),
            gaps: vec![[104 * s, 106 * s]],
            pauses: vec![deskrec_vault::PauseSpan {
                range: deskrec_vault::TimeRange::new(107 * s, 108 * s),
                reason: "card_payment".into(),
            }],
        };
        let detail = ContactDetail {
            contact: c,
            recording: Some(rec),
            audio: None,
        };
        let html = contact(&user, &detail).into_string();
        for marker in [
            r#"class="marker start" data-at="0""#,
            r#"class="marker end" data-at="10.000""#,
            r#"data-at="0.000" data-until="1.000""#,
            r#"data-at="9.000" data-until="10.000""#,
            r#"data-at="4.000" data-until="6.000""#,
            r#"class="marker pause" data-at="7.000" data-until="8.000" data-reason="card_payment""#,
        ] {
            assert!(html.contains(marker), "{marker} missing: {html}");
        }
        assert!(html.contains(r#"data-video-at="1.000""#), "{html}");
        assert!(html.contains("No call audio"), "{html}");
    }

    #[test]
    fn contact_ids_are_encoded_in_links_and_escaped_in_text() {
        assert_eq!(contact_href("a/b?c"), "/contacts/a%2Fb%3Fc");
        let user = Supervisor {
            user_id: 1,
            name: "<b>Vic</b>".into(),
            windows_login: "CORP\\vic".into(),
            permissions: Default::default(),
        };
        let c = ContactRow {
            id: 1,
            contact_id: "<script>x</script>".into(),
            windows_login: "CORP\\ann".into(),
            agent_name: None,
            start_at: 0,
            end_at: 1,
            direction: None,
            queue: Some("\"><img src=x>".into()),
            status: "pending".into(),
            status_reason: None,
            disposal: None,
        };
        let detail = ContactDetail {
            contact: c,
            recording: None,
            audio: None,
        };
        let html = contact(&user, &detail).into_string();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(!html.contains("<b>Vic"), "{html}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<img src=x>"));
    }
}
