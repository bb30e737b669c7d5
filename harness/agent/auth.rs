//! Bearer tokens: loaded from a file, compared in constant time.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Shortest token accepted: 128 bits of hex.
pub const MIN_TOKEN_LEN: usize = 32;

#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn load(path: &Path) -> Result<Token> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            bail!(
                "--token-file {}: a token must be one word of at least {MIN_TOKEN_LEN} characters \
                 (e.g. `openssl rand -hex 16`)",
                path.display()
            );
        }
        Ok(Token(token.as_bytes().to_vec()))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Checks an `Authorization` header value. The comparison takes the same
    /// time wherever the first difference is, so a caller cannot find the
    /// token byte by byte.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        constant_time_eq(presented, &self.0)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, expected) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ expected;
    }
    std::hint::black_box(diff) == 0
}

/// A fresh random token (hex of 16 bytes from /dev/urandom).
pub fn generate() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
    }

    #[test]
    fn bearer_prefix_is_required() {
        let t = Token(b"0123456789abcdef0123456789abcdef".to_vec());
        assert!(t.accepts(Some(b"Bearer 0123456789abcdef0123456789abcdef")));
        assert!(!t.accepts(Some(b"0123456789abcdef0123456789abcdef")));
        assert!(!t.accepts(None));
    }

    #[test]
    fn short_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "short\n").unwrap();
        assert!(Token::load(&p)
            .unwrap_err()
            .to_string()
            .contains("at least 32"));
        std::fs::write(&p, format!("{}\n", generate().unwrap())).unwrap();
        assert!(Token::load(&p).is_ok());
    }
}
