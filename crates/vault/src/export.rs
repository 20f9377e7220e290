//! Export: a verified recording as an MP4 a browser plays, trimmed to the
//! manifest's exact range.
//!
//! Decoding has to start at the keyframe before the trim start, so the
//! frames between that keyframe and the trim start ("pre-roll") are written
//! with a duration of one tick (1 µs) each, and an edit list starts playback
//! after them. A player that honours edit lists (ffmpeg, browsers) starts
//! exactly at the trim start; one that does not shows the pre-roll for a few
//! microseconds. The file is a plain (progressive) MP4 with the sample
//! tables at the end, written in one pass with constant memory per frame.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use mp4_atom::{
    Avc1, Avcc, Co64, Dinf, Dref, Edts, Elst, ElstEntry, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia,
    Minf, Moov, Mvhd, Stbl, Stsc, StscEntry, Stsd, Stss, Stsz, StszSamples, Stts, SttsEntry, Tkhd,
    Trak, Url, Visual, Vmhd,
};
use serde::Serialize;

use crate::durable::AtomicFile;
use crate::error::{Result, VaultError};
use crate::frame::Frame;
use crate::h264::{NAL_AUD, NAL_PPS, NAL_SPS, nal_type, nal_units};
use crate::keys::Keyring;
use crate::time::{Micros, TimeRange};
use crate::verify::{DeviceIdentity, RecordingReader, Verified};

/// Media timescale: microseconds, so frame times need no rounding.
const MEDIA_TIMESCALE: u32 = 1_000_000;
/// Movie timescale (edit lists and movie duration): milliseconds.
const MOVIE_TIMESCALE: u32 = 1_000;

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The verification behind it.
    pub verified: Verified,
    /// The range shown.
    pub trim: TimeRange,
    /// Frames written, pre-roll included.
    pub samples: u64,
    /// Frames before the trim start, needed only to decode.
    pub preroll: u64,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// Size of the MP4 file.
    pub bytes: u64,
}

/// Verifies `recording` and writes it to `out` as MP4. Nothing appears at
/// `out` unless every check passes.
pub fn export_mp4(
    recording: &Path,
    keyring: &Keyring,
    device: DeviceIdentity<'_>,
    out: &Path,
) -> Result<Exported> {
    let reader = RecordingReader::open(recording, keyring, device)?;
    let trim = reader.manifest().trim;
    let first = &reader.scan().parts[0].header;
    let (width, height) = (first.width, first.height);
    let mut file = AtomicFile::create(out, 0o640).map_err(VaultError::io(out))?;
    let mut mp4 = Mp4Writer::start(file.file(), width, height)?;
    let verified = reader.for_each_frame(|header, frame| {
        if (header.width, header.height) != (width, height) {
            return Err(VaultError::Export(format!(
                "the picture size changes from {width}x{height} to {}x{} within the recording; \
                 this version exports one size per file",
                header.width, header.height
            )));
        }
        mp4.push_trimmed(&frame, trim)
    })?;
    let (samples, preroll) = (mp4.samples.len() as u64, mp4.preroll);
    let bytes = mp4.finish(trim)?;
    file.commit().map_err(VaultError::io(out))?;
    Ok(Exported {
        verified,
        trim,
        samples,
        preroll,
        width,
        height,
        bytes,
    })
}

/// One sample's entry in the tables.
struct Sample {
    size: u32,
    duration: u32,
    keyframe: bool,
}

/// Writes `ftyp`, a growing `mdat`, then `moov` with the sample tables.
struct Mp4Writer<'f> {
    out: BufWriter<&'f mut File>,
    width: u32,
    height: u32,
    mdat_start: u64,
    written: u64,
    avcc: Option<Avcc>,
    samples: Vec<Sample>,
    preroll: u64,
    nal_buf: Vec<u8>,
}

impl<'f> Mp4Writer<'f> {
    fn start(file: &'f mut File, width: u32, height: u32) -> Result<Self> {
        let mut head = Vec::new();
        Ftyp {
            major_brand: FourCC::new(b"isom"),
            minor_version: 512,
            compatible_brands: [b"isom", b"iso2", b"avc1", b"mp41"]
                .map(FourCC::new)
                .to_vec(),
        }
        .encode(&mut head)
        .map_err(mp4_error)?;
        let mdat_start = head.len() as u64;
        // A 64-bit mdat header whose size is patched at the end.
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&0u64.to_be_bytes());
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&head)?;
        Ok(Self {
            out,
            width,
            height,
            mdat_start,
            written: head.len() as u64,
            avcc: None,
            samples: Vec::new(),
            preroll: 0,
            nal_buf: Vec::new(),
        })
    }

    /// Adds a frame with its duration cut to `trim`; frames wholly before
    /// the trim start become one-tick pre-roll, frames after its end are
    /// dropped.
    fn push_trimmed(&mut self, frame: &Frame, trim: TimeRange) -> Result<()> {
        let range = frame.range();
        if range.start >= trim.end {
            return Ok(());
        }
        if self.samples.is_empty() && !frame.keyframe {
            return Err(VaultError::Export(
                "the recording does not start with a keyframe".into(),
            ));
        }
        let duration = if range.end <= trim.start {
            self.preroll += 1;
            1
        } else {
            let shown: Micros = range
                .end
                .min(trim.end)
                .saturating_sub(range.start.max(trim.start));
            u32::try_from(shown)
                .map_err(|_| VaultError::Export(format!("frame at {} lasts too long", frame.pts)))?
        };
        self.push(frame, duration)
    }

    fn push(&mut self, frame: &Frame, duration: u32) -> Result<()> {
        self.nal_buf.clear();
        let (mut sps, mut pps) = (None, None);
        for nal in nal_units(&frame.data) {
            match nal_type(nal) {
                NAL_SPS => sps = Some(nal),
                NAL_PPS => pps = Some(nal),
                NAL_AUD => {}
                _ => {
                    self.nal_buf
                        .extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    self.nal_buf.extend_from_slice(nal);
                }
            }
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let avcc = Avcc::new(sps, pps).map_err(mp4_error)?;
            match &self.avcc {
                None => self.avcc = Some(avcc),
                Some(first) if *first == avcc => {}
                Some(_) => {
                    return Err(VaultError::Export(
                        "the H.264 parameters change within the recording; this version exports one set per file".into(),
                    ));
                }
            }
        }
        if self.avcc.is_none() {
            return Err(VaultError::Export(
                "the first keyframe carries no SPS/PPS".into(),
            ));
        }
        if self.nal_buf.is_empty() {
            return Err(VaultError::Export(format!(
                "frame at {} holds no picture",
                frame.pts
            )));
        }
        self.out.write_all(&self.nal_buf)?;
        self.written += self.nal_buf.len() as u64;
        self.samples.push(Sample {
            size: self.nal_buf.len() as u32,
            duration,
            keyframe: frame.keyframe,
        });
        Ok(())
    }

    /// Patches the mdat size, writes moov, returns the file size.
    fn finish(mut self, trim: TimeRange) -> Result<u64> {
        let Some(avcc) = self.avcc.take() else {
            return Err(VaultError::Export(
                "no frame falls inside the trim range".into(),
            ));
        };
        let moov = self.moov(avcc, trim);
        let mut buf = Vec::new();
        moov.encode(&mut buf).map_err(mp4_error)?;
        self.out.write_all(&buf)?;
        let end = self.written + buf.len() as u64;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(self.mdat_start + 8))?;
        file.write_all(&(self.written - self.mdat_start).to_be_bytes())?;
        Ok(end)
    }

    fn moov(&self, avcc: Avcc, trim: TimeRange) -> Moov {
        let media_duration: u64 = self.samples.iter().map(|s| s.duration as u64).sum();
        let shown_ms = (trim.duration() as u64).div_ceil(1000);
        let mut stts: Vec<SttsEntry> = Vec::new();
        for s in &self.samples {
            match stts.last_mut() {
                Some(e) if e.sample_delta == s.duration => e.sample_count += 1,
                _ => stts.push(SttsEntry {
                    sample_count: 1,
                    sample_delta: s.duration,
                }),
            }
        }
        let keyframes = self
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keyframe)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let edts = (self.preroll > 0).then(|| Edts {
            elst: Some(Elst {
                entries: vec![ElstEntry {
                    segment_duration: shown_ms,
                    media_time: Some(self.preroll),
                    media_rate: 1.into(),
                }],
            }),
        });
        Moov {
            mvhd: Mvhd {
                timescale: MOVIE_TIMESCALE,
                duration: shown_ms,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: 2,
                ..Default::default()
            },
            trak: vec![Trak {
                tkhd: Tkhd {
                    track_id: 1,
                    duration: shown_ms,
                    enabled: true,
                    in_movie: true,
                    width: (self.width as u16).into(),
                    height: (self.height as u16).into(),
                    ..Default::default()
                },
                edts,
                mdia: Mdia {
                    mdhd: Mdhd {
                        timescale: MEDIA_TIMESCALE,
                        duration: media_duration,
                        language: "und".into(),
                        ..Default::default()
                    },
                    hdlr: Hdlr {
                        handler: FourCC::new(b"vide"),
                        name: "Deskrec screen".into(),
                    },
                    minf: Minf {
                        vmhd: Some(Vmhd::default()),
                        dinf: Dinf {
                            dref: Dref {
                                entries: vec![Url::default().into()],
                            },
                        },
                        stbl: Stbl {
                            stsd: Stsd {
                                codecs: vec![
                                    Avc1 {
                                        visual: Visual {
                                            data_reference_index: 1,
                                            width: self.width as u16,
                                            height: self.height as u16,
                                            horizresolution: 72.into(),
                                            vertresolution: 72.into(),
                                            frame_count: 1,
                                            compressor: "".into(),
                                            depth: 24,
                                        },
                                        avcc,
                                        ..Default::default()
                                    }
                                    .into(),
                                ],
                            },
                            stts: Stts { entries: stts },
                            stss: Some(Stss { entries: keyframes }),
                            stsc: Stsc {
                                entries: vec![StscEntry {
                                    first_chunk: 1,
                                    samples_per_chunk: self.samples.len() as u32,
                                    sample_description_index: 1,
                                }],
                            },
                            stsz: Stsz {
                                samples: StszSamples::Different {
                                    sizes: self.samples.iter().map(|s| s.size).collect(),
                                },
                            },
                            co64: Some(Co64 {
                                entries: vec![self.mdat_start + 16],
                            }),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                },
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

fn mp4_error(e: mp4_atom::Error) -> VaultError {
    VaultError::Export(format!("MP4 encoding: {e}"))
}
