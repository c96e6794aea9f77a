//! What the command line reads and prints, made safe in one place: every file (or stdin) it
//! reads is capped ([`read_capped`]: never more than the cap plus one byte is read, so
//! `--token /dev/zero` fails at once instead of filling memory), and every text from a token
//! it prints has its control characters and bidirectional overrides escaped ([`printable`],
//! [`printable_json`]), so a customer name cannot move the cursor, clear the screen or reverse
//! what follows it on the vendor's terminal.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

/// A license token file: the format's 64 KiB cap on a token
/// ([`licensing_core::MAX_TOKEN_BYTES`]), plus room for a line ending.
pub(crate) const TOKEN_CAP: u64 = licensing_core::MAX_TOKEN_BYTES as u64 + 2;
/// A key file: a PEM key, a JWK or a JWK Set (a PEM key is 113 bytes; a JWK Set of a hundred
/// keys fits in 16 KiB).
pub(crate) const KEY_CAP: u64 = 256 * 1024;
/// A claims file (the signed payload must fit in a 64 KiB token; a pretty-printed file is
/// larger than its payload).
pub(crate) const CLAIMS_CAP: u64 = 1024 * 1024;
/// A fingerprint file (at most 32 components of 43 characters).
pub(crate) const FINGERPRINT_CAP: u64 = 64 * 1024;

/// Where the input comes from: a file, or stdin for `-` where the flag allows it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Standard input.
    Stdin,
    /// A file.
    File(&'a Path),
}

impl<'a> Source<'a> {
    /// `-` is stdin, anything else a file path.
    pub(crate) fn from_arg(arg: &'a str) -> Source<'a> {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(Path::new(arg))
        }
    }
}

/// Reads at most `cap` bytes from `source`, which `flag` (e.g. `--token`) named. Errors name
/// the flag, the file and, for an input past the cap, the cap; never more than `cap + 1` bytes
/// are read.
pub(crate) fn read_capped(flag: &str, source: Source<'_>, cap: u64) -> Result<Vec<u8>, String> {
    let name = source_name(source);
    match source {
        Source::Stdin => read_capped_from(flag, &name, std::io::stdin().lock(), cap),
        Source::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("{flag} {name}: {e}"))?;
            read_capped_from(flag, &name, file, cap)
        }
    }
}

/// [`read_capped`] from a reader already opened (`name`: the file, for messages).
pub(crate) fn read_capped_from(
    flag: &str,
    name: &str,
    reader: impl Read,
    cap: u64,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{flag} {name}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "{flag} {name}: larger than {}, the most this flag accepts",
            size(cap)
        ));
    }
    Ok(bytes)
}

fn source_name(source: Source<'_>) -> String {
    match source {
        Source::Stdin => "stdin".to_owned(),
        Source::File(path) => path.display().to_string(),
    }
}

/// [`read_capped`] for a text input: UTF-8 required (a leading byte order mark is dropped).
pub(crate) fn read_capped_text(flag: &str, source: Source<'_>, cap: u64) -> Result<String, String> {
    let bytes = read_capped(flag, source, cap)?;
    into_text(flag, &source_name(source), bytes)
}

/// The bytes `flag` named as UTF-8 text, a leading byte order mark dropped.
pub(crate) fn into_text(flag: &str, name: &str, bytes: Vec<u8>) -> Result<String, String> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{flag} {name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// `cap` in MiB or KiB (for messages).
fn size(cap: u64) -> String {
    if cap.is_multiple_of(1024 * 1024) {
        format!("{} MiB", cap / (1024 * 1024))
    } else if cap.is_multiple_of(1024) {
        format!("{} KiB", cap / 1024)
    } else if cap > 1024 {
        format!("{} KiB + {} bytes", cap / 1024, cap % 1024)
    } else {
        format!("{cap} bytes")
    }
}

/// Whether `c` changes how a terminal shows what follows: a control character (C0, DEL, C1:
/// escape sequences, carriage return, backspace...), a bidirectional override, embedding,
/// isolate or mark, or a line or paragraph separator.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every character [`is_unsafe`] written as `\u{XXXX}` (and `\` as `\\`, so an
/// escape in the output is never ambiguous): safe to print on a terminal.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) || c == '\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON with the characters [`is_unsafe`] that JSON allows raw in strings (C1
/// controls, bidirectional controls, separators) written as `\uXXXX` escapes: the same JSON
/// value, safe to print on a terminal. (serde_json already escapes C0 controls.)
pub(crate) fn printable_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Outside strings JSON holds only ASCII structure and whitespace (`\n` of pretty
        // printing included), which is kept; inside strings serde_json has escaped C0 already.
        if is_unsafe(c) && !c.is_ascii() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_controls_and_bidi_overrides() {
        assert_eq!(printable("ACME GmbH"), "ACME GmbH");
        assert_eq!(
            printable("a\u{1b}[2Jb\u{202e}cba\\"),
            "a\\u{001b}[2Jb\\u{202e}cba\\\\"
        );
        assert_eq!(printable("x\ny\u{9b}z"), "x\\u{000a}y\\u{009b}z");
    }

    #[test]
    fn printable_json_keeps_the_value() {
        let value = serde_json::json!({ "customer": "a\u{1b}b\u{202e}c\u{85}d" });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = printable_json(&text);
        assert!(!safe.chars().any(is_unsafe_but_newline), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    fn is_unsafe_but_newline(c: char) -> bool {
        c != '\n' && is_unsafe(c)
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'a'; 11]).unwrap();
        assert_eq!(
            read_capped("--x", Source::File(&path), 11).unwrap().len(),
            11
        );
        let e = read_capped("--x", Source::File(&path), 10).unwrap_err();
        assert!(e.starts_with("--x ") && e.contains("10 bytes"), "{e}");
        let e = read_capped("--token", Source::File(Path::new("/dev/zero")), 1024).unwrap_err();
        assert!(e.contains("1 KiB"), "{e}");
        std::fs::write(&path, b"\xef\xbb\xbfabc").unwrap();
        assert_eq!(
            read_capped_text("--x", Source::File(&path), 10).unwrap(),
            "abc"
        );
        std::fs::write(&path, b"ab\xff").unwrap();
        let e = read_capped_text("--x", Source::File(&path), 10).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
