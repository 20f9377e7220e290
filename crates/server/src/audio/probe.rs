//! What an audio file is, read by decoding it: its format, codec, rate,
//! channels and duration. A file that does not decode whole is refused,
//! so what is stored is known to play.
//!
//! Decoding is symphonia's (pure Rust; WAV with PCM, mu-law and A-law,
//! MP3, AAC in MP4/M4A, and the Ogg container). Symphonia has no Opus
//! decoder, and Opus is the one format here that would need a C library
//! (libopus): an Ogg/Opus file is checked by reading every packet through
//! symphonia's Ogg demuxer and checking each packet's framing (RFC 6716
//! §3), which also gives its duration; the browser decodes it.

use serde::Serialize;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AudioInfo {
    /// The container: `wav`, `mp3`, `mp4` or `ogg`.
    pub container: String,
    /// The codec: `pcm_s16le`, `pcm_mulaw`, `pcm_alaw`, `mp3`, `aac`,
    /// `opus`, ...
    pub codec: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Duration, µs.
    pub duration_us: i64,
    /// The media type browsers play it as.
    pub media_type: String,
}

/// Why a file is not audio the server keeps.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not a format the server reads.
    #[error(
        "not audio in a format the server reads (WAV with PCM, mu-law or A-law; MP3; AAC in M4A/MP4; Opus in Ogg): {0}"
    )]
    Format(String),
    /// The format is known, but the file does not decode whole.
    #[error("the audio does not decode: {0} (cut short or damaged?)")]
    Damaged(String),
}

/// Probes `source` (a file, or bytes in a `Cursor`) by decoding every
/// packet of its first audio track.
pub fn probe(mut source: impl MediaSource + 'static) -> Result<AudioInfo, ProbeError> {
    let format_err = |e: SymphoniaError| ProbeError::Format(e.to_string());
    let mut head = [0u8; 12];
    let n = source
        .read(&mut head)
        .and_then(|n| source.seek(std::io::SeekFrom::Start(0)).map(|_| n))
        .map_err(|e| ProbeError::Format(e.to_string()))?;
    let container = container_of(&head[..n]);
    let source = MediaSourceStream::new(Box::new(source), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(format_err)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| ProbeError::Format("no audio track".into()))?
        .clone();
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_owned())
        .unwrap_or_else(|| {
            if params.codec == CODEC_TYPE_OPUS {
                "opus".into()
            } else {
                format!("{}", params.codec)
            }
        });
    let channels = params.channels.map(|c| c.count() as u32);
    let opus = params.codec == CODEC_TYPE_OPUS;
    let mut decoder = if opus {
        None
    } else {
        Some(
            symphonia::default::get_codecs()
                .make(&params, &DecoderOptions { verify: true })
                .map_err(format_err)?,
        )
    };
    let (mut frames, mut packets) = (0u64, 0u64);
    let mut rate = params.sample_rate.unwrap_or(0);
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // Symphonia reports the end of the stream as an unexpected EOF;
            // a cut file is told apart below, by its declared length.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(ProbeError::Damaged(e.to_string())),
        };
        if packet.track_id() != track.id {
            continue;
        }
        packets += 1;
        match &mut decoder {
            Some(d) => {
                let decoded = d
                    .decode(&packet)
                    .map_err(|e| ProbeError::Damaged(format!("packet {packets}: {e}")))?;
                frames += decoded.frames() as u64;
                rate = decoded.spec().rate;
            }
            None => {
                let samples = opus_samples(&packet.data).ok_or_else(|| {
                    ProbeError::Damaged(format!("packet {packets} is not an Opus packet"))
                })?;
                frames += u64::from(samples);
                rate = 48_000;
            }
        }
    }
    if packets == 0 || frames == 0 || rate == 0 {
        return Err(ProbeError::Damaged("no audio in it".into()));
    }
    if opus {
        frames = frames.saturating_sub(u64::from(params.delay.unwrap_or(0)));
    }
    // A container that declares its length (WAV, M4A) and ends early is
    // cut: the last packets are missing, not silent.
    if let Some(declared) = params.n_frames
        && !opus
        && frames + u64::from(rate) / 100 < declared
    {
        return Err(ProbeError::Damaged(format!(
            "the file declares {declared} samples and holds {frames}"
        )));
    }
    Ok(AudioInfo {
        container: container.to_owned(),
        media_type: media_type(container, opus).to_owned(),
        codec,
        sample_rate: rate,
        channels: channels.unwrap_or(1),
        duration_us: (frames as i128 * 1_000_000 / i128::from(rate)) as i64,
    })
}

/// The container, from the file's first bytes (symphonia does not say
/// which demuxer it chose).
fn container_of(head: &[u8]) -> &'static str {
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        "wav"
    } else if head.starts_with(b"OggS") {
        "ogg"
    } else if head.get(4..8) == Some(b"ftyp") {
        "mp4"
    } else if head.starts_with(b"ID3")
        || (head.len() > 1 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
    {
        "mp3"
    } else {
        "audio"
    }
}

fn media_type(container: &str, opus: bool) -> &'static str {
    match container {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "mp4" => "audio/mp4",
        "ogg" if opus => "audio/ogg; codecs=opus",
        "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// The samples (at 48 kHz) in one Opus packet, or `None` when its framing
/// is invalid (RFC 6716 §3.1–3.2): empty, a code-1 packet of odd length,
/// a code-3 packet with no frames or over 120 ms.
pub fn opus_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration (Table 2).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 => {
            if !(packet.len() - 1).is_multiple_of(2) {
                return None;
            }
            2
        }
        2 => {
            if packet.len() < 2 {
                return None;
            }
            2
        }
        _ => {
            let count = u32::from(*packet.get(1)? & 0x3f);
            if count == 0 {
                return None;
            }
            count
        }
    };
    let samples = frame * frames;
    (samples <= 5760).then_some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_framing_is_checked() {
        // Config 1 (SILK NB 20 ms), code 0: one 960-sample frame.
        assert_eq!(opus_samples(&[1 << 3, 0xaa]), Some(960));
        // Code 1 needs an even payload.
        assert_eq!(opus_samples(&[(1 << 3) | 1, 1, 2]), Some(1920));
        assert_eq!(opus_samples(&[(1 << 3) | 1, 1]), None);
        // Code 3: a count of 0 frames, or over 120 ms, is invalid.
        assert_eq!(opus_samples(&[(1 << 3) | 3, 0]), None);
        assert_eq!(opus_samples(&[(3 << 3) | 3, 3]), None);
        assert_eq!(opus_samples(&[]), None);
    }

    #[test]
    fn bytes_that_are_not_audio_are_refused() {
        let bytes = |b: &[u8]| std::io::Cursor::new(b.to_vec());
        assert!(matches!(
            probe(bytes(b"hello, world")),
            Err(ProbeError::Format(_))
        ));
        assert!(matches!(probe(bytes(b"")), Err(ProbeError::Format(_))));
    }
}
