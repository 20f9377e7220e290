//! The server's log output: one event, one line, whatever its fields hold.
//!
//! Logins, host names, contact ids and error messages come from devices
//! and browsers. Fields naming them are logged with `?` (quoted, escaped),
//! and, as a second line of defence for every other field and message,
//! [`OneLine`] escapes any CR or LF inside an event before it is written:
//! no client can make the log show a line the server did not write.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Installs the `tracing` subscriber: `RUST_LOG` filters (default `info`),
/// one line per event on standard error.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(OneLine(io::stderr))
        .init();
}

/// A [`MakeWriter`] whose writers escape CR and LF inside each event (the
/// formatter writes an event, its final newline included, in one call).
#[derive(Clone, Copy, Debug)]
pub struct OneLine<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }
}

/// The writer of [`OneLine`].
#[derive(Debug)]
pub struct OneLineWriter<W>(W);

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with every CR and LF but a final newline written as `\r`, `\n`.
fn escape(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    if !body.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return buf.into();
    }
    let mut out = Vec::with_capacity(buf.len() + 8);
    for &b in body {
        match b {
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out.into()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_client_text_with_line_breaks_cannot_forge_a_log_line() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(OneLine(move || sink.clone()))
            .finish();
        let forged = "ann\r\n2026-12-03T10:00:00Z  INFO deskrec_server: admin signed in";
        tracing::subscriber::with_default(subscriber, || {
            // `%` on purpose: the writer must hold even where a field is
            // logged with Display.
            tracing::info!(login = %forged, "agent hello");
            tracing::warn!("message with\na break");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("ann\\r\\n2026"), "{text}");
        assert!(lines[1].contains("with\\na break"), "{text}");
    }

    #[test]
    fn ordinary_lines_pass_unchanged() {
        assert_eq!(&*escape(b"plain line\n"), b"plain line\n");
        assert_eq!(&*escape(b"no newline"), b"no newline");
    }
}
