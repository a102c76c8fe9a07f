//! Core errors as JS errors. The stable code leads the message as `[CODE]`; `ts/binding.ts` moves it to
//! `error.code` and picks the matching `Error` subclass.

use convkit_core::Error;

pub fn to_napi(err: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("[{}] {err}", err.code()))
}

/// A panic caught before it crossed into Node: reported, never an abort.
pub fn panicked(payload: Box<dyn std::any::Any + Send>) -> napi::Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("[INTERNAL] native code panicked: {what}"),
    )
}
