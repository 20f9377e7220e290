//! AES-256-CBC chunk encryption against OpenSSL on the same machine.
//!
//! Ours is the whole per-chunk call, `SegmentKeys::encrypt`: a fresh random
//! IV from the OS, PKCS#7 padding and a new ciphertext buffer, as the
//! segment writer pays it. The reference is `openssl speed -evp
//! aes-256-cbc` at its largest block size, 16 KiB, the size compared. A
//! third figure, the same RustCrypto cipher encrypting in place with no IV,
//! padding or allocation, tells whether a gap is the call's overhead or the
//! cipher itself.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeEncrypt, KeyIvInit};
use anyhow::{Context, Result, bail};
use deskrec_vault::internals::SegmentKeys;

use crate::report::{Goal, Report};
use crate::synth::Rng;
use crate::timing::median;

/// The block size compared with OpenSSL's largest.
const BLOCK: usize = 16 << 10;
/// A block closer to a real chunk (2 s at ~6 MB/min is ~200 KB).
const BIG_BLOCK: usize = 1 << 20;
/// One measuring window; figures are medians of several.
const WINDOW: Duration = Duration::from_millis(250);
/// Measured windows per figure (one more runs first, unrecorded).
const WINDOWS: usize = 5;
/// How long `openssl speed` runs.
const OPENSSL_SECONDS: u32 = 2;

/// Measures and adds `encrypt_vs_openssl`, `aes_mb_s`, `aes_1mib_mb_s`,
/// `aes_cbc_raw_mb_s` and `openssl_aes_mb_s` (MB = 10^6 bytes, as OpenSSL
/// counts). Our 16 KiB figure is measured half before and half after
/// OpenSSL's, so both see the same background load.
pub fn run(report: &mut Report) -> Result<()> {
    eprintln!("vault bench: AES-256-CBC, ours and openssl speed");
    let keys = SegmentKeys::generate();
    let mut ours = rates(BLOCK, WINDOWS / 2 + 1, segment_keys(&keys));
    let openssl = openssl_mb_s()?;
    ours.extend(rates(BLOCK, WINDOWS / 2 + 1, segment_keys(&keys)));
    let ours = median(&ours);
    let ours_big = median(&rates(BIG_BLOCK, WINDOWS, segment_keys(&keys)));
    let raw = median(&rates(BLOCK, WINDOWS, raw_cbc()));
    report.add_goal(
        "encrypt_vs_openssl",
        ours / openssl,
        Goal::AtLeast(0.8),
        "SegmentKeys::encrypt / openssl speed, 16 KiB blocks",
    );
    report.add(
        "aes_mb_s",
        ours,
        "MB/s",
        "SegmentKeys::encrypt on 16 KiB (IV, padding, alloc)",
    );
    report.add(
        "aes_1mib_mb_s",
        ours_big,
        "MB/s",
        "SegmentKeys::encrypt on 1 MiB",
    );
    report.add(
        "aes_cbc_raw_mb_s",
        raw,
        "MB/s",
        "aes+cbc crates in place on 16 KiB (no IV, padding, alloc)",
    );
    report.add(
        "openssl_aes_mb_s",
        openssl,
        "MB/s",
        "openssl speed -evp aes-256-cbc, 16384-byte column",
    );
    Ok(())
}

/// The vault's own call.
fn segment_keys(keys: &SegmentKeys) -> impl FnMut(&mut [u8]) + '_ {
    move |buf| {
        black_box(keys.encrypt(black_box(buf)));
    }
}

/// The cipher the vault uses, with nothing around it.
fn raw_cbc() -> impl FnMut(&mut [u8]) {
    let (key, iv) = ([7u8; 32], [9u8; 16]);
    move |buf| {
        let len = buf.len();
        let enc = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into());
        black_box(
            enc.encrypt_padded::<NoPadding>(black_box(buf), len)
                .expect("whole blocks"),
        );
    }
}

/// MB/s of `encrypt` on a random `block`-byte buffer in each of `windows`
/// windows, after one unrecorded warm-up window.
fn rates(block: usize, windows: usize, mut encrypt: impl FnMut(&mut [u8])) -> Vec<f64> {
    let mut buf = vec![0u8; block];
    Rng(block as u64 | 1).fill(&mut buf);
    let mut rates = Vec::with_capacity(windows);
    for window in 0..=windows {
        let start = Instant::now();
        let mut bytes = 0usize;
        while start.elapsed() < WINDOW {
            encrypt(&mut buf);
            bytes += block;
        }
        if window > 0 {
            rates.push(bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
        }
    }
    rates
}

/// Runs `openssl speed` for 16 KiB blocks and returns its MB/s.
fn openssl_mb_s() -> Result<f64> {
    let seconds = OPENSSL_SECONDS.to_string();
    let bytes = BLOCK.to_string();
    let out = Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-cbc",
            "-seconds",
            &seconds,
            "-bytes",
            &bytes,
        ])
        .output()
        .context("running openssl (install it with `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// The last column of `openssl speed`'s AES-256-CBC row, in MB/s. OpenSSL
/// prints "The 'numbers' are in 1000s of bytes per second processed", each
/// with a `k` suffix; the last column is the largest block size.
pub fn parse_openssl_speed(text: &str) -> Result<f64> {
    let row = text
        .lines()
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("aes-256-cbc"))
        })
        .with_context(|| format!("no AES-256-CBC row in openssl speed's output:\n{text}"))?;
    let last = row.split_whitespace().last().unwrap_or_default();
    let kilobytes: f64 = last
        .strip_suffix('k')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("cannot read {last:?} in openssl speed's row {row:?}"))?;
    Ok(kilobytes / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_largest_block_column() {
        let out = "The 'numbers' are in 1000s of bytes per second processed.\n\
                   type             16 bytes     64 bytes    256 bytes   1024 bytes   8192 bytes  16384 bytes\n\
                   AES-256-CBC     652398.41k   931282.56k   998180.69k  1011574.10k  1022001.15k  1025618.66k\n";
        let mb_s = parse_openssl_speed(out).unwrap();
        assert!((mb_s - 1025.61866).abs() < 1e-6);
    }

    #[test]
    fn reads_a_single_column_and_refuses_garbage() {
        let out = "type          16384 bytes\nAES-256-CBC    1130000.00k\n";
        assert_eq!(parse_openssl_speed(out).unwrap(), 1130.0);
        assert!(parse_openssl_speed("type 16384 bytes\n").is_err());
        assert!(parse_openssl_speed("aes-256-cbc  fast\n").is_err());
    }
}
