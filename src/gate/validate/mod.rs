//! Token validation: a compact JWS checked against the key set (algorithm,
//! signature) and the configuration (issuer, audience, expiry), yielding the
//! caller's [`Principal`].
//!
//! The parser is ours rather than jsonwebtoken's `decode` for two reasons that
//! the benchmarks measure: keys are parsed once per key set instead of once per
//! token, and nothing is allocated until the signature has verified. It is
//! also stricter: claims of the wrong JSON type, repeated claims, `crit`
//! extensions, `typ`s that are not an access token's and oversize tokens are
//! refused by name. jsonwebtoken is kept as the reference it is checked
//! against (`tests/it/differential.rs`): what jsonwebtoken refuses, this
//! refuses too.

use std::{sync::Arc, time::Duration};

use crate::{
    error::AuthError,
    gate::methods::IssuerMethods,
    keys::{Algorithm, KeySet, VerifyingKey},
    util::static_name,
};

mod claims;
mod compact;
mod header;
mod json;
mod peek;
mod principal;

pub use claims::MAX_SCOPE_CLAIMS;
use claims::{ClaimNames, Claims};
pub use compact::MAX_TOKEN_BYTES;
use compact::{STACK_DECODED, decode, split};
use header::{Header, known_alg_name, media_subtype};
pub use peek::claimed_issuer;
pub use principal::Principal;

/// Stack room for a signature up to RSA-4096.
const STACK_SIGNATURE: usize = 512;

/// What a token must say to be accepted, and what it may call: one issuer's
/// rules. [`ValidationConfig::default`] has every default below, with no
/// issuer and no audience, so a config reads
/// `ValidationConfig { issuer, audiences, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct ValidationConfig {
    /// The exact `iss` required. It need not be a URL (`accounts.google.com`,
    /// a service account's email) when the keys come from a JWKS URL given
    /// outright; only discovery needs a URL.
    pub issuer: String,
    /// The audience claim must contain one of these.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`; [`DEFAULT_LEEWAY`] by default.
    pub leeway: Duration,
    /// The only `typ` accepted (`--require-typ`), compared without case and
    /// with `application/` optional, so `at+jwt` also accepts
    /// `application/at+jwt`. `None`: any of [`ACCEPTED_TYPS`], or no `typ`.
    pub require_typ: Option<String>,
    /// The claim that must name one of `audiences` ([`DEFAULT_AUDIENCE_CLAIM`],
    /// `aud`, by default: one string or an array of strings). Any other claim
    /// must hold one string: `client_id` for AWS Cognito access tokens, which
    /// carry no `aud`. A token without it is refused (`token has no
    /// `client_id` claim`).
    pub audience_claim: String,
    /// When set, the `token_use` claim must be a string equal to this
    /// (`access` for Cognito, so that its ID tokens, `token_use: "id"`, are
    /// refused); a token without one is refused. `None` (the default): not
    /// read.
    pub token_use: Option<String>,
    /// The claims scopes are granted from, in this order
    /// ([`DEFAULT_SCOPE_CLAIMS`]: `scope`, `scp`, `permissions`); add `roles`
    /// for Azure AD app-only tokens. Each may be a space-separated string or
    /// an array of strings, but `permissions`, which must be an array as Auth0
    /// writes it; a claim of another type refuses the token. At most
    /// [`MAX_SCOPE_CLAIMS`]: [`Validator::new`] reads the first ones only, and
    /// the gate's builder refuses more.
    pub scope_claims: Vec<String>,
    /// When set, the only request paths this issuer's tokens may call, each
    /// exact or `/prefix/*` for every path under `/prefix/`; any other path is
    /// refused `PERMISSION_DENIED` after authentication, whatever scopes the
    /// token grants (scope rules are the same for every issuer). Checked by
    /// [`Gate::check`](crate::Gate::check), not by [`Validator::validate`],
    /// which has no method; public paths (health, reflection) never reach
    /// it. `None` (the default): any path.
    pub methods: Option<Vec<String>>,
}

/// The clock skew allowed on `exp` and `nbf` unless said otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The claim that names the audience unless an issuer says otherwise.
pub const DEFAULT_AUDIENCE_CLAIM: &str = "aud";

/// The claims scopes come from unless an issuer says otherwise: OAuth's
/// `scope` (Auth0, Okta), Azure AD's `scp` and Auth0 RBAC's `permissions`.
pub const DEFAULT_SCOPE_CLAIMS: [&str; 3] = ["scope", "scp", "permissions"];

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            issuer: String::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_typ: None,
            audience_claim: DEFAULT_AUDIENCE_CLAIM.into(),
            token_use: None,
            scope_claims: DEFAULT_SCOPE_CLAIMS.map(String::from).into(),
            methods: None,
        }
    }
}

/// The `typ` values accepted when none is required, in any case: an access
/// token's (RFC 9068 §2.1) or a plain JWT's, each with or without its
/// optional `application/` (RFC 7515 §4.1.9). A DPoP proof, a logout token
/// and the like are never access tokens (RFC 8725 §3.11).
pub const ACCEPTED_TYPS: [&str; 4] = ["JWT", "application/jwt", "at+jwt", "application/at+jwt"];

/// Checks tokens against one issuer's rules. Holds no keys: they come with
/// each call from the key set the refresher last published.
#[derive(Debug, Clone)]
pub struct Validator {
    issuer: Box<str>,
    audiences: Box<[Box<str>]>,
    leeway: i64,
    /// `--require-typ` without its optional `application/`.
    require_typ: Option<Box<str>>,
    /// Which claims name the audience and grant scopes, and whether
    /// `token_use` is read.
    claims: ClaimNames,
    /// The `token_use` required, if any.
    token_use: Option<Box<str>>,
    /// The only paths its tokens may call, handed to each [`Principal`].
    methods: Option<Arc<IssuerMethods>>,
}

/// A token that passed every check, and the key that signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who the caller is.
    pub principal: Principal,
    /// The key that verified the signature.
    pub key: Arc<VerifyingKey>,
}

impl Validator {
    /// A validator for one issuer and its audiences.
    pub fn new(config: ValidationConfig) -> Validator {
        Validator {
            audiences: config
                .audiences
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            require_typ: config
                .require_typ
                .map(|typ| media_subtype(typ.trim()).into()),
            claims: ClaimNames {
                audience: static_name(&config.audience_claim),
                token_use: config.token_use.is_some(),
                scopes: config
                    .scope_claims
                    .iter()
                    .take(MAX_SCOPE_CLAIMS)
                    .map(|name| static_name(name))
                    .collect(),
            },
            token_use: config.token_use.map(String::into_boxed_str),
            methods: config
                .methods
                .map(|methods| Arc::new(IssuerMethods::new(&config.issuer, &methods))),
            issuer: config.issuer.into_boxed_str(),
        }
    }

    /// Whether a token whose header says `typ` (or nothing) is accepted.
    pub fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match (&self.require_typ, typ) {
            (None, None) => true,
            (None, Some(typ)) => ACCEPTED_TYPS.iter().any(|t| t.eq_ignore_ascii_case(typ)),
            (Some(_), None) => false,
            (Some(want), Some(typ)) => media_subtype(typ).eq_ignore_ascii_case(want),
        }
    }

    /// The clock skew allowed, in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// The exact `iss` this validator requires.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Checks a compact JWS at time `now` (seconds since the Unix epoch):
    /// form, algorithm, key, signature, then the claims. The payload is parsed
    /// only once the signature has verified.
    pub fn validate(
        &self,
        token: impl AsRef<[u8]>,
        keys: &KeySet,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let token = token.as_ref();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong {
                max: MAX_TOKEN_BYTES,
            });
        }
        let (header_b64, payload_b64, signature_b64) = split(token)?;

        let (mut buf, mut heap) = ([0u8; STACK_DECODED], Vec::new());
        let header = decode(header_b64, &mut buf, &mut heap, "header is not base64url")?;
        let header = Header::parse(header)?;
        let alg = Algorithm::from_name(&header.alg)
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(known_alg_name(&header.alg)))?;
        if header.crit {
            return Err(AuthError::UnsupportedCritical);
        }
        if header.jwk {
            return Err(AuthError::EmbeddedKey);
        }
        if !self.accepts_typ(header.typ.as_deref()) {
            return Err(AuthError::TypeNotAccepted);
        }
        let key = match header.kid.as_deref() {
            // A kid may name keys of several types: the one for `alg`.
            Some(kid) => keys
                .named(kid)
                .ok_or(AuthError::UnknownKeyId)?
                .iter()
                .find(|key| key.verifies(alg))
                .ok_or(AuthError::KeyAlgorithmMismatch)?,
            None => keys.sole_key_for(alg).ok_or(AuthError::MissingKeyId)?,
        };
        drop(header);

        if signature_b64.is_empty() {
            return Err(AuthError::BadSignature);
        }
        let (mut signature, mut signature_heap) = ([0u8; STACK_SIGNATURE], Vec::new());
        let signature = decode(
            signature_b64,
            &mut signature,
            &mut signature_heap,
            "signature is not base64url",
        )
        .map_err(|_| AuthError::BadSignature)?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match key.verify(alg, signed, signature) {
            None => return Err(AuthError::KeyAlgorithmMismatch),
            Some(false) => return Err(AuthError::BadSignature),
            Some(true) => {}
        }

        let payload = decode(payload_b64, &mut buf, &mut heap, "payload is not base64url")?;
        let claims = Claims::parse(payload, &self.claims)?;
        // A fraction of a second counts against the token: `exp` rounds
        // down, `nbf` up.
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?.floor();
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway) < nbf.ceil())
        {
            return Err(AuthError::NotYetValid);
        }
        match &claims.iss {
            None => return Err(AuthError::MissingClaim("iss")),
            Some(iss) if **iss != *self.issuer => return Err(AuthError::WrongIssuer),
            Some(_) => {}
        }
        // Before the audience: a Cognito ID token has `aud` and no
        // `client_id`, and is better told it is the wrong kind of token.
        if let Some(want) = &self.token_use {
            match &claims.token_use {
                None => return Err(AuthError::MissingClaim("token_use")),
                Some(token_use) if **token_use != **want => {
                    return Err(AuthError::WrongTokenUse);
                }
                Some(_) => {}
            }
        }
        let aud = claims
            .aud
            .as_ref()
            .ok_or(AuthError::MissingClaim(self.claims.audience))?;
        if !self.audiences.iter().any(|want| aud.contains(want)) {
            return Err(AuthError::WrongAudience);
        }

        Ok(Verified {
            principal: Principal::new(
                &claims,
                exp,
                self.leeway,
                key.kid(),
                payload,
                self.methods.as_ref(),
            ),
            key: key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::{claims::*, json::*, peek::*};
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use std::borrow::Cow;

    #[test]
    fn split_takes_exactly_three_base64url_parts() {
        let split = |s: &str| split(s.as_bytes()).map(|_| ());
        assert!(split("a.b.c").is_ok());
        assert_eq!(
            split("a.b.c.d.e"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert_eq!(
            split("a.b"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert!(
            split("a.b.").is_ok(),
            "an empty signature is refused after the header is read"
        );
        assert_eq!(
            split(".b.c"),
            Err(AuthError::Malformed("an empty header or payload"))
        );
        for bad in ["a.b.c=", "a.b+.c", "a b.c.d", "a.b.c\n", "á.b.c"] {
            assert_eq!(
                split(bad),
                Err(AuthError::Malformed("a character outside base64url")),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_name_the_claim_with_the_wrong_type() {
        for (json, name) in [
            (&br#"{"exp":"1"}"#[..], "exp"),
            (br#"{"nbf":true}"#, "nbf"),
            (br#"{"iat":null}"#, "iat"),
            (br#"{"iss":1}"#, "iss"),
            (br#"{"sub":["a"]}"#, "sub"),
            (br#"{"aud":{"a":1}}"#, "aud"),
            (br#"{"aud":["a",1]}"#, "aud"),
            (br#"{"scope":1}"#, "scope"),
            (br#"{"scope":["a",1]}"#, "scope"),
            (br#"{"scp":{"a":1}}"#, "scp"),
            (br#"{"scp":"a","scp":"b"}"#, "scp"),
            (br#"{"permissions":"a"}"#, "permissions"),
            (br#"{"exp":-1}"#, "exp"),
            (br#"{"nbf":-0.5}"#, "nbf"),
            (br#"{"exp":1e19}"#, "exp"),
            (br#"{"iat":1e400}"#, "iat"),
            (br#"{"exp":1,"exp":2}"#, "exp"),
            (br#"{"iss":"a","iss":"b"}"#, "iss"),
        ] {
            match Claims::parse(json, &ClaimNames::default()) {
                Err(AuthError::InvalidClaim(n)) => assert_eq!(n, name),
                _ => panic!("{} should fail on {name}", String::from_utf8_lossy(json)),
            }
        }
        assert!(matches!(
            Claims::parse(b"[1]", &ClaimNames::default()),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            Claims::parse(b"{} {}", &ClaimNames::default()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn the_claimed_issuer_is_the_first_top_level_iss_wherever_it_is() {
        let token = |payload: &str| format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
        let issuers = ["https://a.example/", "https://b.example/"];
        let find =
            |t: &str| claimed_issuer(t.as_bytes(), |iss| issuers.iter().position(|i| *i == iss));
        let pad = |n: usize| "x".repeat(n);
        assert_eq!(find(&token(r#"{"iss":"https://b.example/"}"#)), Ok(1));
        assert_eq!(
            find(&token(r#"{"sub":"u","iss":"https:\/\/a.example\/"}"#)),
            Ok(0)
        );
        // Past the stack prefix, and straddling its end, in every position.
        let far = format!(r#"{{"pad":"{}","iss":"https://b.example/"}}"#, pad(3000));
        assert_eq!(find(&token(&far)), Ok(1));
        for n in (150..210).chain(960..1040) {
            let near = format!(
                r#"{{"pad":"{}","iss":"https://a.example/","more":"{}"}}"#,
                pad(n),
                pad(500)
            );
            assert_eq!(find(&token(&near)), Ok(0), "{n}");
        }
        let early = format!(r#"{{"iss":"https://a.example/","pad":"{}"}}"#, pad(3000));
        assert_eq!(find(&token(&early)), Ok(0));
        // Found in the first KiB, `iss` is all that is read: what follows is
        // validation's to judge (here a byte no base64url has, past the
        // stack prefix), and the look at `iss` decodes no more than that.
        let first_kib = format!(r#"{{"pad":"{}","iss":"https://b.example/"}}"#, pad(700));
        let tail = format!("{}{}", URL_SAFE_NO_PAD.encode(&first_kib), "A".repeat(600));
        let with_junk = format!("e30.{}!.c2ln", &tail[..STACK_DECODED / 3 * 4 + 100]);
        assert_eq!(find(&with_junk), Ok(1));
        for (payload, error) in [
            (r#"{"iss":"https://c.example/"}"#, AuthError::WrongIssuer),
            (r#"{"iss":"https://a.example"}"#, AuthError::WrongIssuer),
            (r#"{"sub":"u"}"#, AuthError::MissingClaim("iss")),
            (
                r#"{"a":{"iss":"https://a.example/"}}"#,
                AuthError::MissingClaim("iss"),
            ),
            (
                r#"{"iss":["https://a.example/"]}"#,
                AuthError::InvalidClaim("iss"),
            ),
            (
                r#"[{"iss":"https://a.example/"}]"#,
                AuthError::Malformed("claims are not a JSON object"),
            ),
            (
                "not json",
                AuthError::Malformed("claims are not a JSON object"),
            ),
        ] {
            assert_eq!(find(&token(payload)), Err(error), "{payload}");
        }
        assert_eq!(
            find("e30.!!!.c2ln"),
            Err(AuthError::Malformed("a character outside base64url"))
        );
        assert_eq!(
            find("e30.e30"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert!(matches!(
            find(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthError::TooLong { .. })
        ));
    }

    #[test]
    fn peeking_at_iss_reads_what_serde_json_reads() {
        let docs = [
            r#"{"iss":"https://a.example/"}"#,
            r#" { "sub" : "u" , "iss" : "https://a.example/" } "#,
            r#"{"aud":["x","y"],"n":{"iss":"nested","a":[1,{"iss":"deeper"}]},"iss":"top"}"#,
            r#"{"note":"\"iss\":\"fake\"","iss":"real"}"#,
            r#"{"a\"b":"\\","i\u0073s":"escaped name"}"#,
            r#"{"iss":"https:\/\/a.example\/\u00e9"}"#,
            r#"{"exp":1.5e3,"nbf":-2,"t":true,"f":false,"z":null,"iss":"after literals"}"#,
            r#"{"s":"[{not a bracket","iss":"after brackets in a string"}"#,
            r#"{"iss":"ünïcödé"}"#,
            r#"{"sub":"u"}"#,
            r#"{}"#,
            r#"{"iss":7}"#,
            r#"{"iss":["a"]}"#,
            r#"{"iss":null}"#,
        ];
        for doc in docs {
            let value: serde_json::Value = serde_json::from_str(doc).unwrap();
            let want = value.get("iss");
            let (how, got) = peek_iss(doc.as_bytes());
            match want {
                Some(serde_json::Value::String(iss)) => {
                    assert_eq!(got.as_deref(), Some(iss.as_str()), "{doc}")
                }
                Some(_) => assert!(got.is_none() && matches!(how, IssPeek::NotAString), "{doc}"),
                None => assert!(got.is_none() && matches!(how, IssPeek::Absent), "{doc}"),
            }
            // A cut anywhere finds the same `iss` or none.
            for cut in 0..doc.len() {
                let (_, early) = peek_iss(&doc.as_bytes()[..cut]);
                assert!(early.is_none() || early == got, "{doc} cut at {cut}");
            }
        }
        for bad in [
            "",
            "[]",
            "\"iss\"",
            "{\"iss\"}",
            "{\"iss\":\"unterminated",
            "{1:2}",
            "{\"a\":1 \"iss\":\"x\"}",
        ] {
            assert!(peek_iss(bad.as_bytes()).1.is_none(), "{bad}");
        }
    }

    #[test]
    fn numeric_dates_take_integers_and_fractions() {
        let c = Claims::parse(
            br#"{"exp":1.9,"nbf":2.1,"iat":18446744073709551615}"#,
            &ClaimNames::default(),
        )
        .unwrap();
        let (exp, nbf, iat) = (c.exp.unwrap(), c.nbf.unwrap(), c.iat.unwrap());
        assert_eq!((exp.floor(), exp.ceil()), (1, 2));
        assert_eq!((nbf.floor(), nbf.ceil()), (2, 3));
        assert_eq!((iat.floor(), iat.ceil()), (i64::MAX, i64::MAX));
        // serde_json reads `-0` as -0.0, which jsonwebtoken takes as 0.
        let c = Claims::parse(br#"{"exp":0,"nbf":-0}"#, &ClaimNames::default()).unwrap();
        assert_eq!((c.exp.unwrap().ceil(), c.nbf.unwrap().ceil()), (0, 0));
    }

    #[test]
    fn scopes_come_from_scope_scp_and_permissions_in_either_shape() {
        let payload = br#"{"scope":"a b","scp":["c d","a",""],"permissions":["e","b"]}"#;
        let claims = Claims::parse(payload, &ClaimNames::default()).unwrap();
        let principal = Principal::new(&claims, 0, 0, None, payload, None);
        assert_eq!(
            principal.scopes().collect::<Vec<_>>(),
            ["a", "b", "c d", "e"]
        );
        let payload = br#"{"scope":["x"],"scp":"y z"}"#;
        let principal = Principal::new(
            &Claims::parse(payload, &ClaimNames::default()).unwrap(),
            0,
            0,
            None,
            payload,
            None,
        );
        assert_eq!(principal.scopes().collect::<Vec<_>>(), ["x", "y", "z"]);
    }

    /// Claim names as a validator for these settings reads them.
    fn names(audience: &str, token_use: bool, scopes: &[&str]) -> ClaimNames {
        let config = ValidationConfig {
            audience_claim: audience.into(),
            token_use: token_use.then(|| "access".into()),
            scope_claims: scopes.iter().map(|s| (*s).into()).collect(),
            ..ValidationConfig::default()
        };
        Validator::new(config).claims
    }

    #[test]
    fn the_issuers_claims_are_read_by_the_names_it_gives() {
        let payload = br#"{"client_id":"app","aud":7,"token_use":"access","roles":["R.Read","W"],"scope":"a R.Read","permissions":"p"}"#;
        // Cognito's audience claim, and Azure AD's roles before scope; `aud`
        // and `permissions` are then claims like any other, unchecked.
        let cognito_azure = names("client_id", true, &["roles", "scope"]);
        let claims = Claims::parse(payload, &cognito_azure).unwrap();
        assert!(claims.aud.as_ref().unwrap().contains("app"));
        assert_eq!(claims.token_use.as_deref(), Some("access"));
        let principal = Principal::new(&claims, 0, 0, None, payload, None);
        assert_eq!(principal.scopes().collect::<Vec<_>>(), ["R.Read", "W", "a"]);
        // By default, `roles` grants nothing and `token_use` is not read.
        let payload = br#"{"aud":"x","roles":["R.Read"],"token_use":7}"#;
        let claims = Claims::parse(payload, &ClaimNames::default()).unwrap();
        assert!(claims.token_use.is_none());
        let principal = Principal::new(&claims, 0, 0, None, payload, None);
        assert_eq!(principal.scopes().count(), 0);
        for (json, read, name) in [
            // Any audience claim but `aud` is one string.
            (
                &br#"{"client_id":["app"]}"#[..],
                names("client_id", false, &[]),
                "client_id",
            ),
            (
                br#"{"client_id":"a","client_id":"a"}"#,
                names("client_id", false, &[]),
                "client_id",
            ),
            (br#"{"token_use":1}"#, names("aud", true, &[]), "token_use"),
            (
                br#"{"roles":{"a":1}}"#,
                names("aud", false, &["roles"]),
                "roles",
            ),
            (
                br#"{"roles":["a",1]}"#,
                names("aud", false, &["roles"]),
                "roles",
            ),
            (
                br#"{"groups":"a","groups":"b"}"#,
                names("aud", false, &["scp", "groups"]),
                "groups",
            ),
            // `permissions` stays an array, wherever it is listed.
            (
                br#"{"permissions":"a"}"#,
                names("aud", false, &["roles", "permissions"]),
                "permissions",
            ),
            (
                br#"{"my-scopes":7}"#,
                names("aud", false, &["my-scopes"]),
                "my-scopes",
            ),
        ] {
            match Claims::parse(json, &read) {
                Err(AuthError::InvalidClaim(n)) => assert_eq!(n, name),
                _ => panic!("{} should fail on {name}", String::from_utf8_lossy(json)),
            }
        }
        // No more scope claims are read than there is room for.
        let many: Vec<String> = (0..MAX_SCOPE_CLAIMS + 2).map(|i| format!("s{i}")).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert_eq!(names("aud", false, &many).scopes.len(), MAX_SCOPE_CLAIMS);
    }

    #[test]
    fn unchecked_claims_must_read_back_as_checked() {
        let refused = [
            // Repeated, at the top or deeper, where serde_json keeps the last.
            &br#"{"email":"a","email":"b"}"#[..],
            br#"{"org":{"id":1,"id":2}}"#,
            br#"{"a":[{"k":1,"k":1}]}"#,
            br#"{"e\u006dail":"a","email":"b"}"#,
            // Text or numbers serde_json will not read back.
            br#"{"name":"\udc00"}"#,
            b"{\"name\":\"\xff\"}",
            br#"{"big":1e400}"#,
        ];
        for json in refused {
            assert!(
                matches!(Claims::parse(json, &ClaimNames::default()), Err(AuthError::Malformed(why)) if why.contains("repeated")),
                "{} passed",
                String::from_utf8_lossy(json)
            );
        }
        let fine = br#"{"email":"a","org":{"id":1,"name":"\u00e9"},"list":[1,2.5,null,true,{}]}"#;
        let claims = Claims::parse(fine, &ClaimNames::default()).unwrap();
        let principal = Principal::new(&claims, 0, 0, None, fine, None);
        let value: serde_json::Value = principal.claims().unwrap();
        assert_eq!(value["org"]["name"], "\u{e9}");
    }

    #[test]
    fn names_find_repeats_past_the_inline_ones() {
        let mut names = Names::new();
        for i in 0..20 {
            assert!(names.insert(Cow::Owned(format!("n{i}"))));
        }
        for i in 0..20 {
            assert!(!names.insert(Cow::Owned(format!("n{i}"))), "n{i}");
        }
    }

    #[test]
    fn typ_is_an_access_tokens_unless_narrowed() {
        let validator = |require: Option<&str>| {
            Validator::new(ValidationConfig {
                issuer: "i".into(),
                audiences: vec!["a".into()],
                leeway: Duration::ZERO,
                require_typ: require.map(Into::into),
                ..Default::default()
            })
        };
        let default = validator(None);
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("application/jwt"),
            Some("Application/JWT"),
            Some("at+jwt"),
            Some("AT+JWT"),
            Some("application/at+jwt"),
            Some("Application/AT+JWT"),
        ] {
            assert!(default.accepts_typ(typ), "{typ:?}");
        }
        for typ in [
            "dpop+jwt",
            "logout+jwt",
            "secevent+jwt",
            "JWS",
            "",
            "at+jwt ",
            "application/jwt+at",
            "application/",
        ] {
            assert!(!default.accepts_typ(Some(typ)), "{typ}");
        }
        for require in ["at+jwt", "application/at+jwt", "AT+JWT"] {
            let narrow = validator(Some(require));
            assert!(narrow.accepts_typ(Some("at+jwt")));
            assert!(narrow.accepts_typ(Some("application/at+jwt")));
            for typ in [None, Some("JWT"), Some("dpop+jwt")] {
                assert!(!narrow.accepts_typ(typ), "{require}: {typ:?}");
            }
        }
    }

    #[test]
    fn headers_need_one_string_alg_and_flag_crit() {
        assert!(Header::parse(br#"{"alg":"RS256","kid":"k"}"#).is_ok());
        let fine = br#"{"alg":"RS256","typ":"at+jwt","cty":"x","x5c":["MII"],"x5t":"a","b64":true,"other":{"a":[1]}}"#;
        assert_eq!(Header::parse(fine).unwrap().typ.as_deref(), Some("at+jwt"));
        assert!(
            Header::parse(br#"{"alg":"RS256","crit":["exp"]}"#)
                .unwrap()
                .crit
        );
        assert!(
            Header::parse(br#"{"alg":"RS256","jwk":{"kty":"OKP"}}"#)
                .unwrap()
                .jwk
        );
        for bad in [&br#"{"kid":"k"}"#[..], br#"{"alg":"RS256"}x"#, b"null"] {
            assert!(
                matches!(Header::parse(bad), Err(AuthError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Members jsonwebtoken would refuse are refused, by name.
        for (bad, name) in [
            (&br#"{"alg":"RS256","alg":"none"}"#[..], "alg"),
            (br#"{"alg":1}"#, "alg"),
            (br#"{"alg":"RS256","kid":7}"#, "kid"),
            (br#"{"alg":"RS256","typ":["JWT"]}"#, "typ"),
            (br#"{"alg":"RS256","typ":"JWT","typ":"JWT"}"#, "typ"),
            (br#"{"alg":"RS256","cty":1}"#, "cty"),
            (br#"{"alg":"RS256","x5c":"MII"}"#, "x5c"),
            (br#"{"alg":"RS256","x5t#S256":null}"#, "x5t#S256"),
            (br#"{"alg":"RS256","b64":false}"#, "b64"),
            (br#"{"alg":"RS256","b64":"yes"}"#, "b64"),
            (br#"{"alg":"RS256","jku":"a","jku":"b"}"#, "jku"),
            (br#"{"alg":"RS256","x":1,"x":1}"#, "(another member)"),
            (br#"{"alg":"RS256","x":"\ud800"}"#, "(another member)"),
            (br#"{"alg":"RS256","x":1e999}"#, "(another member)"),
        ] {
            match Header::parse(bad) {
                Err(AuthError::InvalidHeader(n)) => assert_eq!(n, name),
                _ => panic!("{} should fail on {name}", String::from_utf8_lossy(bad)),
            }
        }
    }
}
