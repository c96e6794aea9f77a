//! Runs the uniffi generator at the workspace's uniffi version (the one `Cargo.lock` pins), so
//! the generated Kotlin, Swift and Python always match the scaffolding compiled into the library:
//!
//! ```text
//! cargo run -p uniffi-bindgen -- generate --no-format \
//!     --library target/debug/liblicensing_uniffi.so --language python --out-dir out/
//! ```
fn main() {
    uniffi::uniffi_bindgen_main()
}
