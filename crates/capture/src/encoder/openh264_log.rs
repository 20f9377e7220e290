//! Routes OpenH264's log messages into `tracing`.
//!
//! OpenH264 prints its messages to stderr by default, and the reason for an
//! error code (an unsupported parameter, say) exists only there. A trace
//! callback sends them to `tracing` instead (target `openh264`), where the
//! agent's log collects them.

use std::ffi::{CStr, c_char, c_int, c_void};

use openh264::encoder::Encoder;
use openh264_sys2::{
    ENCODER_OPTION_TRACE_CALLBACK, ENCODER_OPTION_TRACE_LEVEL, WELS_LOG_ERROR, WELS_LOG_WARNING,
    WelsTraceCallback,
};

/// Installs [`forward`] as the trace callback and lets warnings and errors
/// through. Works before and after OpenH264 is initialised; call it again
/// after initialisation, which resets the level to quiet.
pub(super) fn route_to_tracing(encoder: &mut Encoder) {
    let mut callback: WelsTraceCallback = Some(forward);
    let mut level: c_int = WELS_LOG_WARNING;
    // SAFETY: the trace options are accepted in any state of the encoder
    // (welsEncoderExt.cpp, `SetOption`); OpenH264 copies the callback pointer
    // and the level out of the pointed-to locals during the call. `forward`
    // matches `WelsTraceCallback` and lives for the whole program.
    let results = unsafe {
        let raw = encoder.raw_api();
        [
            raw.set_option(ENCODER_OPTION_TRACE_CALLBACK, (&raw mut callback).cast()),
            raw.set_option(ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast()),
        ]
    };
    if results != [0, 0] {
        tracing::debug!(?results, "could not route OpenH264's log to tracing");
    }
}

/// The trace callback: one formatted message per call.
unsafe extern "C" fn forward(_context: *mut c_void, level: c_int, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: OpenH264 passes a NUL-terminated buffer on its stack that
    // lives until this call returns (welsCodecTrace.cpp, `CodecTrace`).
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    // Errors are also returned as codes, and become `EncodeError`s.
    match level {
        WELS_LOG_ERROR => tracing::warn!(target: "openh264", "{text}"),
        WELS_LOG_WARNING => tracing::info!(target: "openh264", "{text}"),
        _ => tracing::debug!(target: "openh264", "{text}"),
    }
}
