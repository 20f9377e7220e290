#!/usr/bin/env bash
# Renders Deskrec's icons from their SVG sources (see assets/README.md).
#
#   bash assets/render.sh
#
# Needs rsvg-convert (librsvg2-bin), icotool (icoutils) and ImageMagick 6 or 7
# (convert/magick; only for the contact sheet). The outputs are committed, so
# building the app does not need any of these.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

for tool in rsvg-convert icotool; do
    command -v "$tool" >/dev/null || { echo "render.sh: $tool not found" >&2; exit 1; }
done
if command -v magick >/dev/null; then im=(magick); else im=(convert); fi
command -v "${im[0]}" >/dev/null || { echo "render.sh: ImageMagick not found" >&2; exit 1; }

states=(recording not-recording offline attention)
# Windows tray: 16 px at 100 %, 20 at 125 %, 24 at 150 %, 32 at 200 %, 40 and 48
# beyond; Linux StatusNotifier hosts ask for 22-48; 64 for HiDPI panels.
tray_sizes=(16 20 24 32 40 48 64)

# One SVG to one RGBA PNG (rsvg-convert always writes 8-bit RGBA).
render() { # svg size out
    rsvg-convert --width "$2" --height "$2" --keep-aspect-ratio --format png "$1" --output "$3"
}

# ---- tray icons -----------------------------------------------------------
mkdir -p tray/png
for state in "${states[@]}"; do
    pngs=()
    for size in "${tray_sizes[@]}"; do
        out="tray/png/$state-$size.png"
        render "tray/$state.svg" "$size" "$out"
        pngs+=("$out")
    done
    # Small sizes: 32-bit BMP entries with alpha (every Windows version reads them).
    icotool --create --output "tray/$state.ico" "${pngs[@]}"
done

# ---- application icon (the names Tauri 2's bundler expects) --------------
render app/deskrec.svg 32 app/32x32.png
render app/deskrec.svg 128 app/128x128.png
render app/deskrec.svg 256 app/128x128@2x.png
render app/deskrec.svg 512 app/icon.png
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ico_pngs=()
for size in 16 20 24 32 40 48 64 128; do
    render app/deskrec.svg "$size" "$tmp/app-$size.png"
    ico_pngs+=("$tmp/app-$size.png")
done
render app/deskrec.svg 256 "$tmp/app-256.png"
# 256 px is stored as PNG inside the .ico (Vista and later), the rest as BMP.
icotool --create --output app/icon.ico "${ico_pngs[@]}" --raw="$tmp/app-256.png"

# ---- contact sheet: every state at every size, on a light and a dark strip --
# No date chunks, so re-running does not change the file.
nodate=(-define png:exclude-chunks=date,time)
font=()
if fc-match -f '%{file}' 'DejaVu Sans' >/dev/null 2>&1; then
    font=(-font "$(fc-match -f '%{file}' 'DejaVu Sans')")
fi
cell=72
label_w=120
strips=()
for theme in light dark; do
    if [ "$theme" = light ]; then bg='#f3f3f3'; fg='#202020'; else bg='#1f2328'; fg='#f0f0f0'; fi
    header=("${im[@]}" -size "${label_w}x28" "xc:$bg")
    for size in "${tray_sizes[@]}"; do
        header+=( \( -size "${cell}x28" -background "$bg" -fill "$fg" "${font[@]}" -pointsize 13
                     -gravity center "label:${size} px" \) )
    done
    header+=(+append "$tmp/header-$theme.png")
    "${header[@]}"
    rows=("$tmp/header-$theme.png")
    for state in "${states[@]}"; do
        row=("${im[@]}" \( -size "${label_w}x${cell}" -background "$bg" -fill "$fg" "${font[@]}"
                           -pointsize 13 -gravity center "label:$state" \))
        for size in "${tray_sizes[@]}"; do
            row+=( \( "tray/png/$state-$size.png" -background "$bg" -gravity center
                      -extent "${cell}x${cell}" \) )
        done
        row+=(+append "$tmp/row-$theme-$state.png")
        "${row[@]}"
        rows+=("$tmp/row-$theme-$state.png")
    done
    "${im[@]}" "${rows[@]}" -background "$bg" -append -bordercolor "$bg" -border 8 "$tmp/strip-$theme.png"
    strips+=("$tmp/strip-$theme.png")
done
"${im[@]}" "${strips[@]}" -append -strip "${nodate[@]}" PNG32:tray/contact-sheet.png

echo "rendered: tray/png/*.png, tray/*.ico, tray/contact-sheet.png, app/{32x32,128x128,128x128@2x,icon}.png, app/icon.ico"
