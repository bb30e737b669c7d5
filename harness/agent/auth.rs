//! Bearer tokens: loaded from a file only its owner can read, at least 128
//! bits strong, compared in constant time; one for jobs and, optionally, a
//! read-only one for scrapers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Shortest token accepted: 128 bits of hex.
pub const MIN_TOKEN_LEN: usize = 32;
/// Least estimated strength accepted.
pub const MIN_TOKEN_BITS: f64 = 128.0;

#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// This process's effective group id (from /proc: no unsafe call needed).
fn effective_gid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let gids = status.lines().find_map(|l| l.strip_prefix("Gid:"))?;
    gids.split_whitespace().nth(1)?.parse().ok()
}

impl Token {
    /// `flag` names the option in messages (`--token-file`).
    pub fn load(flag: &str, path: &Path) -> Result<Token> {
        let meta = std::fs::metadata(path).with_context(|| format!("{flag} {}", path.display()))?;
        let mode = meta.permissions().mode();
        // Group read is allowed only for the agent's own group: a Kubernetes
        // secret mounted for a non-root agent is root:<fsGroup> 0440, and
        // that group is the pod's alone.
        let foreign_group = mode & 0o070 != 0 && Some(meta.gid()) != effective_gid();
        if mode & 0o007 != 0 || foreign_group {
            bail!(
                "{flag} {}: readable by group or others (mode {:04o}); `chmod 600` it",
                path.display(),
                mode & 0o7777
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            bail!(
                "{flag} {}: a token must be one word of at least {MIN_TOKEN_LEN} characters \
                 (e.g. `openssl rand -hex 16`)",
                path.display()
            );
        }
        let bits = estimated_bits(token);
        if bits < MIN_TOKEN_BITS {
            bail!(
                "{flag} {}: the token is about {bits:.0} bits strong, under {MIN_TOKEN_BITS:.0} \
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

/// What the operator may use a request for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// health, inventory, metrics.
    Read,
    /// everything, jobs included.
    Jobs,
}

/// The job token and an optional read-only token.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub jobs: Token,
    pub read: Option<Token>,
}

impl Credentials {
    /// The scope an `Authorization` header grants, if any.
    pub fn scope(&self, header: Option<&[u8]>) -> Option<Scope> {
        if self.jobs.accepts(header) {
            Some(Scope::Jobs)
        } else if self.read.as_ref().is_some_and(|r| r.accepts(header)) {
            Some(Scope::Read)
        } else {
            None
        }
    }
}

/// Strength of a token drawn at random from the smallest common alphabet
/// holding all its characters (hex, base64url, printable ASCII), counting
/// only as many characters as are distinct-enough to be random: a token of
/// few distinct characters is treated as a word, not as random.
fn estimated_bits(token: &str) -> f64 {
    let alphabet: f64 = if token.chars().all(|c| c.is_ascii_hexdigit()) {
        16.0
    } else if token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_+/=".contains(c))
    {
        64.0
    } else {
        94.0
    };
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    // 32 random hex digits hold at least 8 distinct ones with overwhelming
    // probability; fewer means a pattern such as zero padding.
    if distinct.len() < 8 {
        return distinct.len() as f64 * alphabet.log2();
    }
    token.chars().count() as f64 * alphabet.log2()
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

    fn write_private(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn short_and_weak_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        write_private(&p, "short\n");
        let e = Token::load("--token-file", &p).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        write_private(&p, &format!("{:032x}\n", 0xa3f1bu32));
        let e = Token::load("--token-file", &p).unwrap_err().to_string();
        assert!(e.contains("bits strong"), "{e}");
        write_private(&p, &format!("{}\n", generate().unwrap()));
        assert!(Token::load("--token-file", &p).is_ok());
    }

    #[test]
    fn a_token_file_readable_by_others_is_refused_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, generate().unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::load("--token-file", &p).unwrap_err().to_string();
        assert!(e.contains("readable by group or others (mode 0644)"), "{e}");
        assert!(!e.contains('\n'));
        // The agent's own group may read it (a Kubernetes secret with fsGroup).
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let own_group = std::fs::metadata(&p).unwrap().gid() == effective_gid().unwrap();
        assert_eq!(Token::load("--token-file", &p).is_ok(), own_group);
    }

    #[test]
    fn the_read_token_grants_only_the_read_scope() {
        let creds = Credentials {
            jobs: Token(b"j".repeat(32)),
            read: Some(Token(b"r".repeat(32))),
        };
        let header = |t: &[u8]| [b"Bearer ".as_slice(), t].concat();
        assert_eq!(
            creds.scope(Some(&header(&b"j".repeat(32)))),
            Some(Scope::Jobs)
        );
        assert_eq!(
            creds.scope(Some(&header(&b"r".repeat(32)))),
            Some(Scope::Read)
        );
        assert_eq!(creds.scope(Some(&header(&b"x".repeat(32)))), None);
        assert_eq!(creds.scope(None), None);
    }
}
