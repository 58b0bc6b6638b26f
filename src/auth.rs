//! Who may call: optional bearer tokens in the `authorization` metadata, checked by a tonic
//! interceptor on every service except health (and, unless configured, reflection).
//!
//! Only SHA-256 digests of the tokens are kept in memory; a presented token is hashed and
//! compared against every configured digest in constant time (`subtle`), so neither the match
//! position nor the token length leaks through timing.

use std::{fmt, sync::Arc};

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, service::Interceptor};

/// One accepted caller token, kept only as a digest. `Debug` shows the name alone.
#[derive(Clone, PartialEq, Eq)]
pub struct CallerToken {
    name: String,
    digest: [u8; 32],
}

impl CallerToken {
    /// A token named `name` (used in logs, metrics and profile rules).
    pub fn new(name: impl Into<String>, token: &str) -> Self {
        Self {
            name: name.into(),
            digest: sha256(token.as_bytes()),
        }
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerToken({}, <redacted>)", self.name)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Parses tokens from a flag or a mounted file: one per line or comma-separated, each `name=token`
/// or a bare `token` (then named `token-1`, `token-2`...). Blank lines and `#` comments are
/// skipped. An error message names `origin` and the token's name, never the token.
pub fn parse_tokens(text: &str, origin: &str) -> Result<Vec<CallerToken>, String> {
    let mut tokens = Vec::new();
    for entry in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, token) = match entry.split_once('=') {
            Some((name, token)) => (name.trim().to_owned(), token.trim()),
            None => (format!("token-{}", tokens.len() + 1), entry),
        };
        if token.len() < 16 || token.chars().any(char::is_whitespace) {
            return Err(format!(
                "{origin}: caller token {name:?} must be at least 16 characters without spaces"
            ));
        }
        tokens.push(CallerToken::new(name, token));
    }
    Ok(tokens)
}

/// The authenticated caller, put in the request extensions for handlers (profile rules, logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// The interceptor: with no tokens configured every call passes (authentication is off).
#[derive(Debug, Clone, Default)]
pub struct CallerAuth {
    tokens: Arc<[CallerToken]>,
}

impl CallerAuth {
    /// Accepts exactly these tokens (none: authentication off).
    pub fn new(tokens: Vec<CallerToken>) -> Self {
        Self {
            tokens: tokens.into(),
        }
    }

    /// Whether any token is required.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the token `presented` matches, checking every token in constant time.
    fn identify(&self, presented: &str) -> Option<&str> {
        let presented = sha256(presented.as_bytes());
        let mut found = None;
        for token in self.tokens.iter() {
            if bool::from(token.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(token.name.as_str());
            }
        }
        found
    }
}

impl Interceptor for CallerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !self.enabled() {
            return Ok(request);
        }
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return Err(crate::error::caller_unauthenticated(true));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or("");
        match self.identify(token.trim()) {
            Some(name) => {
                let caller = Caller(name.to_owned());
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            None => Err(crate::error::caller_unauthenticated(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(a) = auth {
            r.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        r
    }

    #[test]
    fn tokens_parse_with_names_and_comments() {
        let t = parse_tokens(
            "# callers\nbilling=aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbb, search = cccccccccccccccccccc\n",
            "test",
        )
        .unwrap();
        let names: Vec<&str> = t.iter().map(CallerToken::name).collect();
        assert_eq!(names, ["billing", "token-2", "search"]);
        assert!(parse_tokens("short", "test").is_err());
        assert!(!format!("{:?}", t[0]).contains("aaaa"));
    }

    #[test]
    fn interceptor_accepts_known_tokens_only() {
        let mut auth = CallerAuth::new(parse_tokens("svc=0123456789abcdef0123", "t").unwrap());
        let ok = auth
            .call(request(Some("Bearer 0123456789abcdef0123")))
            .unwrap();
        assert_eq!(ok.extensions().get::<Caller>(), Some(&Caller("svc".into())));
        for bad in [
            None,
            Some("Bearer wrong-token-0000000"),
            Some("0123456789abcdef0123"),
            Some("Basic x"),
        ] {
            let e = auth.call(request(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn no_tokens_means_open() {
        let mut auth = CallerAuth::default();
        assert!(auth.call(request(None)).is_ok());
    }
}
