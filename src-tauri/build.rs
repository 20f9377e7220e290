//! Tauri's build step: embeds `tauri.conf.json`, the window (`../ui`) and
//! the capabilities, and on Windows the icon and manifest.
fn main() {
    tauri_build::build()
}
