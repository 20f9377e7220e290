//! Recordings a hostile device writes and signs itself: the `verify`,
//! `export` and `splice` targets.
//!
//! A device holds its segment keys and its signing key, so whatever it
//! writes passes every digest, MAC and signature check. Random bytes would
//! almost never do that, so these targets read the fuzz input as a *recipe*
//! ([`Recipe`]): picture size, requested and trim ranges, then segments of
//! chunks of frames (times, durations, keyframe flags, H.264 bytes), with
//! optional raw chunk heads and raw chunk plaintexts that need not agree
//! with their frames. The harness then seals every chunk with a real
//! segment key, signs a manifest with a real device key (test keys committed in
//! `keys/`, loaded once per process: [`keys`]) and hands the file to the server's code, so the
//! H.264 splitting, the MP4 tables and the time arithmetic see whatever the
//! input says.
//!
//! Recipe layout (big-endian; reads past the end give zeros, so every
//! input is a recipe):
//!
//! ```text
//! recipe := width u16 | height u16 | flags u8
//!           | requested.start i64 | requested.end i64
//!           | trim.start i64 | trim.end i64 | clock_offset i64
//!           | part*                              (at most MAX_PARTS)
//! part   := started_at i64 | chunks u8 | chunk*  (at most MAX_CHUNKS)
//! chunk  := ctl u8 | frames u8 | frame*
//!           | [ctl & RAW_HEAD]  seq u64 | start i64 | end i64 | keyframe u8 | frame_count u32
//!           | [ctl & RAW_PLAIN] len u16 | plaintext
//! frame  := pts i64 | duration u32 | keyframe u8 | len u16 | data
//! ```
//!
//! Without `RAW_HEAD` a chunk's head is what the writer would compute from
//! its frames (without the writer's checks); without `RAW_PLAIN` its
//! plaintext is its frames, encoded. `crates/vault/fuzz/seeds.py` writes
//! the committed seeds in this layout.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deskrec_vault::internals::{
    ChunkRecord, SegmentKeys, Tag, encode_frames, encode_record, preamble,
};
use deskrec_vault::{
    ChunkHead, DeviceIdentity, Digest, FileKind, Frame, Keyring, MANIFEST_VERSION, Manifest,
    ManifestSegment, PrivateKey, RecordingReader, SegmentEnd, SegmentHeader, SegmentId,
    SignedManifest, SpliceRequest, TimeRange, export_mp4, splice, verify_recording,
};

/// The device id every recipe's segments and manifest carry.
const DEVICE_ID: &str = "pc-fuzz";
/// Segments a recipe may hold; more parts only slow the target down.
const MAX_PARTS: usize = 4;
/// Chunks a segment may hold.
const MAX_CHUNKS: usize = 32;
/// `ctl` bit: read the chunk head from the recipe.
const RAW_HEAD: u8 = 1;
/// `ctl` bit: read the chunk plaintext from the recipe.
const RAW_PLAIN: u8 = 2;
/// `ctl` bit (splice only): flip a ciphertext byte after sealing, as disk
/// damage would; splicing copies without checking MACs.
const DAMAGE: u8 = 4;
/// `flags` bit (splice only): finish each segment with an end record.
const FINISHED: u8 = 1;

/// The keys a device and the server hold, loaded once per process.
///
/// They are small test-only keys committed in `keys/` (1024-bit device,
/// 1088-bit server, the least that RSA-OAEP-SHA256 wraps a segment's 64
/// key bytes with): every input costs a manifest signature and one key
/// unwrap per segment, and with the whole build instrumented for coverage
/// those private-key operations at 2048 bits took most of each run (about
/// 18 ms an input). The vault accepts any key size the `rsa` crate does.
pub struct Keys {
    server: PrivateKey,
    keyring: Keyring,
    device: PrivateKey,
    segment: SegmentKeys,
    /// `segment` wrapped for the server: wrapping is randomised and slow,
    /// so every segment of every recipe shares one key.
    wrapped: Vec<u8>,
}

/// The process's keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let server = PrivateKey::from_pem(include_str!("../keys/server-test-only.pem"))
            .expect("the test server key");
        let device = PrivateKey::from_pem(include_str!("../keys/device-test-only.pem"))
            .expect("the test device key");
        let segment = SegmentKeys::generate();
        let wrapped = segment.wrap(server.public());
        Keys {
            keyring: Keyring::from(server.clone()),
            server,
            device,
            segment,
            wrapped,
        }
    })
}

/// A file of this process's in a scratch directory (on tmpfs when there
/// is one, so the vault's fsyncs cost nothing), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            let dir = base.join("deskrec-fuzz");
            std::fs::create_dir_all(&dir).expect("scratch directory");
            dir
        });
        let path = dir.join(format!("{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Scratch(path)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads big-endian fields; past the end, every field is zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        let got = self.take(N);
        a[..got.len()].copy_from_slice(got);
        a
    }
    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.array())
    }
    fn range(&mut self) -> TimeRange {
        TimeRange::new(self.i64(), self.i64())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A chunk as the recipe describes it.
struct RecipeChunk {
    ctl: u8,
    head: ChunkHead,
    plaintext: Vec<u8>,
}

/// A segment as the recipe describes it.
struct RecipePart {
    started_at: i64,
    chunks: Vec<RecipeChunk>,
}

/// A decoded recipe.
pub struct Recipe {
    width: u32,
    height: u32,
    flags: u8,
    requested: TimeRange,
    trim: TimeRange,
    clock_offset: i64,
    parts: Vec<RecipePart>,
}

impl Recipe {
    /// Reads a recipe from any bytes.
    pub fn read(data: &[u8]) -> Self {
        let mut r = Input(data);
        let mut recipe = Recipe {
            width: r.u16().into(),
            height: r.u16().into(),
            flags: r.u8(),
            requested: r.range(),
            trim: r.range(),
            clock_offset: r.i64(),
            parts: Vec::new(),
        };
        while !r.is_empty() && recipe.parts.len() < MAX_PARTS {
            let started_at = r.i64();
            let n = usize::from(r.u8()).min(MAX_CHUNKS);
            let mut chunks = Vec::new();
            for seq in 0..n as u64 {
                if r.is_empty() {
                    break;
                }
                chunks.push(read_chunk(&mut r, seq));
            }
            recipe.parts.push(RecipePart { started_at, chunks });
        }
        recipe
    }

    /// The segment header of part `i`.
    fn header(&self, i: usize, k: &Keys) -> SegmentHeader {
        SegmentHeader {
            segment_id: SegmentId([i as u8 + 1; 16]),
            key_id: k.server.id(),
            wrapped_key: k.wrapped.clone(),
            device_id: DEVICE_ID.into(),
            started_at: self.parts[i].started_at,
            width: self.width,
            height: self.height,
            frame_rate_mhz: 5000,
        }
    }

    /// Part `i`'s records: header, then sealed chunks (damaged where the
    /// recipe says, if `damage`); with the header digest and each chunk
    /// record's digest.
    fn records(&self, i: usize, k: &Keys, damage: bool) -> (Vec<u8>, Digest, Vec<Vec<u8>>) {
        let head = encode_record(Tag::Header, &self.header(i, k).encode());
        let header_digest: Digest = head[head.len() - 32..].try_into().expect("32 bytes");
        let chunks = self.parts[i]
            .chunks
            .iter()
            .map(|c| {
                let mut rec = ChunkRecord::seal(c.head, &c.plaintext, &k.segment, &header_digest);
                if damage && c.ctl & DAMAGE != 0 {
                    rec.ciphertext[0] ^= 1;
                }
                encode_record(Tag::Chunk, &rec.encode())
            })
            .collect();
        (head, header_digest, chunks)
    }

    /// The recording file a device would upload: every part, then a
    /// manifest that lists exactly those records, signed by the device.
    pub fn recording(&self, k: &Keys) -> Vec<u8> {
        let mut out = preamble(FileKind::Recording).to_vec();
        let mut segments = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            let (head, header_digest, chunks) = self.records(i, k, false);
            out.extend_from_slice(&head);
            let mut digests = Vec::new();
            for c in &chunks {
                out.extend_from_slice(c);
                digests.push(c[c.len() - 32..].try_into().expect("32 bytes"));
            }
            segments.push(ManifestSegment {
                segment_id: SegmentId([i as u8 + 1; 16]).to_string(),
                header_digest,
                first_seq: part.chunks.first().map_or(0, |c| c.head.seq),
                chunks: digests,
            });
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            contact_id: "contact-fuzz".into(),
            agent: "CORP\\fuzz".into(),
            device_id: DEVICE_ID.into(),
            requested: self.requested,
            trim: self.trim,
            clock_offset: self.clock_offset,
            segments,
            created_at: 1_795_510_800_000_000,
            signing_key_id: k.device.id(),
        };
        let signed = SignedManifest::sign(manifest, &k.device).expect("signing");
        out.extend_from_slice(&encode_record(Tag::Manifest, &signed.encode()));
        out
    }

    /// Part `i` as the segment file the device's recorder leaves on disk.
    fn segment(&self, i: usize, k: &Keys) -> Vec<u8> {
        let mut out = preamble(FileKind::Segment).to_vec();
        let (head, header_digest, chunks) = self.records(i, k, true);
        out.extend_from_slice(&head);
        for c in &chunks {
            out.extend_from_slice(c);
        }
        if self.flags & FINISHED != 0 {
            let chunks = &self.parts[i].chunks;
            let end = SegmentEnd::seal(
                chunks.len() as u64,
                chunks
                    .last()
                    .map_or(self.parts[i].started_at, |c| c.head.range.end),
                &k.segment,
                &header_digest,
            );
            out.extend_from_slice(&encode_record(Tag::End, &end.encode()));
        }
        out
    }
}

fn read_chunk(r: &mut Input<'_>, seq: u64) -> RecipeChunk {
    let ctl = r.u8();
    let n = r.u8();
    let frames: Vec<Frame> = (0..n)
        .map(|_| {
            let pts = r.i64();
            let duration = r.u32();
            let flags = r.u8();
            // Bit 1 pauses the frame, with a reason of up to the longest
            // the format allows, in printable letters so it stays valid.
            let pause = (flags & 2 != 0).then(|| {
                let len = usize::from(r.u8()) % (deskrec_vault::MAX_PAUSE_REASON + 1);
                r.take(len).iter().map(|b| char::from(b'a' + b % 26)).collect()
            });
            let len = r.u16();
            Frame {
                pts,
                duration,
                keyframe: flags & 1 == 1,
                pause,
                data: r.take(len.into()).to_vec(),
            }
        })
        .collect();
    let head = if ctl & RAW_HEAD != 0 {
        ChunkHead {
            seq: r.u64(),
            range: r.range(),
            keyframe: r.u8() & 1 == 1,
            frame_count: r.u32(),
        }
    } else {
        let start = frames.first().map_or(0, |f| f.pts);
        let end = frames.last().map_or(start, |f| f.range().end);
        ChunkHead {
            seq,
            range: TimeRange::new(start, end),
            keyframe: frames.first().is_some_and(|f| f.keyframe),
            frame_count: frames.len() as u32,
        }
    };
    let plaintext = if ctl & RAW_PLAIN != 0 {
        let len = r.u16();
        r.take(len.into()).to_vec()
    } else {
        encode_frames(&frames)
    };
    RecipeChunk {
        ctl,
        head,
        plaintext,
    }
}

/// Prints what a target's call returned when `DESKREC_FUZZ_VERBOSE` is
/// set: to see where a seed gets, e.g. `DESKREC_FUZZ_VERBOSE=1 cargo fuzz
/// run ... export corpus/export/seed-preroll`.
fn report(what: &str, result: &dyn std::fmt::Debug) {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    if *VERBOSE.get_or_init(|| std::env::var_os("DESKREC_FUZZ_VERBOSE").is_some()) {
        eprintln!("{what}: {result:?}");
    }
}

fn device(k: &Keys) -> DeviceIdentity<'_> {
    DeviceIdentity {
        id: DEVICE_ID,
        key: k.device.public(),
    }
}

/// The `verify` target: `verify_recording` on a signed recording built
/// from the recipe.
pub fn verify(data: &[u8]) {
    let k = keys();
    let recipe = Recipe::read(data);
    let path = Scratch::new("verify.dskr");
    std::fs::write(&path, recipe.recording(k)).expect("writing the recording");
    let result = verify_recording(&path, &k.keyring, device(k));
    report("verify", &result);
    match result {
        Ok(v) => {
            let listed: usize = v.manifest.segments.iter().map(|s| s.chunks.len()).sum();
            assert_eq!(v.chunks, listed as u64, "every listed chunk is checked");
            for g in &v.gaps {
                assert!(g.start < g.end, "gap {g} is empty or inverted");
            }
            black_box(serde_json::to_string(&v).expect("a verification serialises"));
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
}

/// The `export` target: `export_mp4` on a signed recording built from the
/// recipe; an MP4 it writes must read back with the sample count it claims.
pub fn export(data: &[u8]) {
    let k = keys();
    let recipe = Recipe::read(data);
    let path = Scratch::new("export.dskr");
    let out = Scratch::new("export.mp4");
    std::fs::write(&path, recipe.recording(k)).expect("writing the recording");
    let result = export_mp4(&path, &k.keyring, device(k), &out);
    report("export", &result);
    match result {
        Ok(e) => {
            assert!(e.preroll <= e.samples, "more pre-roll than samples");
            let mp4 = std::fs::read(&out).expect("the export is there");
            assert_eq!(mp4.len() as u64, e.bytes, "the MP4's size as reported");
            check_mp4(&mp4, e.samples);
            black_box(serde_json::to_string(&e).expect("an export serialises"));
        }
        Err(e) => {
            assert!(!out.exists(), "a failed export left {}", out.display());
            black_box(e.to_string());
        }
    }
}

/// Reads an exported MP4 back: `ftyp`, `mdat` (its patched 64-bit size
/// matching the file), then a `moov` whose sample tables hold `samples`
/// samples whose sizes add up to the `mdat` payload.
fn check_mp4(mp4: &[u8], samples: u64) {
    use mp4_atom::{Decode, Ftyp, Moov, StszSamples};
    let mut buf = mp4;
    Ftyp::decode(&mut buf).expect("the MP4 starts with ftyp");
    let at = mp4.len() - buf.len();
    assert_eq!(&mp4[at + 4..at + 8], b"mdat", "mdat follows ftyp");
    let mdat_len = u64::from_be_bytes(mp4[at + 8..at + 16].try_into().expect("8 bytes"));
    let moov_at = at + usize::try_from(mdat_len).expect("mdat fits in memory");
    assert!(moov_at <= mp4.len(), "mdat runs past the end of the file");
    let mut rest = &mp4[moov_at..];
    let moov = Moov::decode(&mut rest).expect("moov follows mdat");
    assert!(rest.is_empty(), "bytes after moov");
    let stbl = &moov.trak[0].mdia.minf.stbl;
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => vec![*size; *count as usize],
        StszSamples::Different { sizes } => sizes.clone(),
    };
    assert_eq!(sizes.len() as u64, samples, "stsz lists every sample");
    let payload: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
    assert_eq!(payload + 16, mdat_len, "the samples fill mdat");
    let stts: u64 = stbl
        .stts
        .entries
        .iter()
        .map(|e| u64::from(e.sample_count))
        .sum();
    assert_eq!(stts, samples, "stts times every sample");
}

/// The `splice` target: the recipe's parts as segment files (some chunks
/// damaged, finished or not), spliced for the recipe's requested range. A
/// recording that splice writes must open on the server (layout and
/// signature), and its trim must lie in the requested range.
pub fn splice_target(data: &[u8]) {
    let k = keys();
    let recipe = Recipe::read(data);
    let files: Vec<Scratch> = (0..recipe.parts.len())
        .map(|i| {
            let path = Scratch::new(&format!("splice-{i}.seg"));
            std::fs::write(&path, recipe.segment(i, k)).expect("writing a segment");
            path
        })
        .collect();
    let segments = files.iter().map(|f| f.to_path_buf()).collect();
    let req = SpliceRequest {
        contact_id: "contact-fuzz".into(),
        agent: "CORP\\fuzz".into(),
        requested: recipe.requested,
        segments,
        clock_offset: recipe.clock_offset,
    };
    let out = Scratch::new("splice.dskr");
    let result = splice(&req, &k.device, &out);
    report("splice", &result);
    match result {
        Ok(o) => {
            let m = &o.manifest;
            assert!(
                m.trim.start >= req.requested.start && m.trim.end <= req.requested.end,
                "trim {} outside the requested {}",
                m.trim,
                req.requested
            );
            assert!(m.trim.start < m.trim.end, "empty trim {}", m.trim);
            assert_eq!(
                std::fs::metadata(&out)
                    .expect("the recording is there")
                    .len(),
                o.bytes
            );
            let reader = RecordingReader::open(&out, &k.keyring, device(k))
                .expect("the server opens what splice wrote");
            assert_eq!(reader.manifest(), m, "the manifest read back");
            assert_eq!(reader.scan().chunks().count(), o.chunks);
            // Decrypting is not checked: a damaged or inconsistent chunk is
            // the device's problem, found here as an error.
            let verified = reader.for_each_frame(|_, _| Ok(()));
            report("splice: verify", &verified);
            if let Err(e) = verified {
                black_box(e.to_string());
            }
        }
        Err(e) => {
            assert!(!out.exists(), "a failed splice left {}", out.display());
            black_box(e.to_string());
        }
    }
}
