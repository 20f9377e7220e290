#!/usr/bin/env python3
"""Writes the committed seeds of the recipe and text fuzz targets.

The `verify`, `export` and `splice` targets read their input as a recipe
(the layout is in `src/signed.rs`), not as a file, so their seeds are
recipes; the text targets' seeds are what devices and administrators
send. Run from anywhere: `python3 crates/vault/fuzz/seeds.py`. (The
`segment`, `recording` and `manifest` seeds are real files written by
`cargo run -p deskrec-bench --bin make-seeds` instead.)
"""

import base64
import json
import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

T0 = 1_795_510_800_000_000  # 2026-11-24T09:00:00Z, as in the vault's tests
FRAME_US = 200_000  # 5 fps

# Annex B access units: enough H.264 structure for the exporter (which
# splits NAL units and keeps SPS/PPS for avcC; it decodes nothing).
SPS = bytes.fromhex("000000016742c01ed900a047fe88")
PPS = bytes.fromhex("0000000168ce3c80")
AUD = bytes.fromhex("0000000109f0")


def idr(n):
    return AUD + SPS + PPS + bytes.fromhex("0000000165888400") + bytes([n % 256]) * 12


def p_slice(n):
    return AUD + bytes.fromhex("00000001419a0200") + bytes([n % 256]) * 6


def frame(pts, key, n):
    data = idr(n) if key else p_slice(n)
    return struct.pack(">qIBH", pts, FRAME_US, 1 if key else 0, len(data)) + data


def chunk(first, count, gop):
    """`count` frames from frame number `first`, keyframe every `gop`."""
    out = struct.pack(">BB", 0, count)
    for n in range(first, first + count):
        out += frame(T0 + n * FRAME_US, n % gop == 0, n)
    return out


def part(started_at, chunks):
    return struct.pack(">qB", started_at, len(chunks)) + b"".join(chunks)


def recipe(requested, trim, parts, finished=True, width=640, height=360):
    head = struct.pack(
        ">HHBqqqqq", width, height, 1 if finished else 0, *requested, *trim, 0
    )
    return head + b"".join(parts)


def s(seconds):
    return T0 + int(seconds * 1_000_000)


def recipes():
    # 8 s: 2 s chunks, 4 s GOP.
    one = [part(T0, [chunk(n, 10, 20) for n in range(0, 40, 10)])]
    # Two segments with a 2 s gap between them.
    two = [
        part(T0, [chunk(0, 10, 20), chunk(10, 10, 20)]),
        part(s(6), [chunk(30, 10, 10), chunk(40, 10, 10)]),
    ]
    return {
        # Exact cover, no pre-roll.
        "seed-one-segment": recipe((T0, s(8)), (T0, s(8)), one),
        # Starts mid-GOP: pre-roll from the keyframe at 4 s, trimmed end.
        "seed-preroll": recipe((s(5.1), s(7.3)), (s(5.1), s(7.3)), one),
        # A gap, a second segment, unfinished segments for splice.
        "seed-two-segments": recipe((s(1), s(9)), (s(1), s(9)), two, finished=False),
    }


def text_seeds():
    token = json.dumps(
        {
            "url": "https://rec.example.com:8443",
            "token": "Zm9vYmFyYmF6cXV4cXV1eA",
            "cert_sha256": "00ff" * 16,
        },
        separators=(",", ":"),
    ).encode()
    compact = base64.urlsafe_b64encode(token).rstrip(b"=")
    b64 = lambda v: base64.b64encode(v.encode()).decode()
    return {
        "token": {
            "seed-token": compact,
            "seed-token-padded-line": b"  " + compact + b"\n",
        },
        "csv": {
            "seed-users": b"name,windows_login,active,roles\n"
            b"Ann Example,CORP\\ann,true,agent\n"
            b"Bob Example,CORP\\bob,no,agent; supervisor\n"
            b'"Doe, Jane",CORP\\jane,,\n',
            "seed-reordered": b"windows_login,name\nCORP\\cy,Cy\n",
        },
        "tus": {
            # line 1: numeric header; line 2: Upload-Checksum; rest: Upload-Metadata
            "seed-create": b"1048576\nsha256 "
            + base64.b64encode(bytes(range(32)))
            + b"\ncontact_id "
            + b64("c-42").encode()
            + b",filename "
            + b64("c-42.dskr").encode(),
            "seed-sha1-flag": b" 0 \nsha1 "
            + base64.b64encode(bytes(20))
            + b"\nis_final,contact_id "
            + b64("contact \u00e9").encode(),
        },
    }


def main():
    for target in ("verify", "export", "splice"):
        for name, data in recipes().items():
            write(target, name, data)
    for target, seeds in text_seeds().items():
        for name, data in seeds.items():
            write(target, name, data)


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    print(f"{d / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
