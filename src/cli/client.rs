//! `authgate token` and `authgate call`: the client-credentials grant and a call to GetPrivate.

use super::values::{parse_duration, parse_secret};
use super::*;
use crate::pb::{
    GetPrivateRequest, GetPrivateResponse, private_service_client::PrivateServiceClient,
};

/// Client credentials for the client-credentials grant, shared by `token`
/// and `call`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The issuer; its discovery document names the token endpoint.
    #[arg(long, env = "AUTHGATE_ISSUER", conflicts_with = "token_url")]
    pub issuer: Option<String>,
    /// The token endpoint itself (Auth0: https://TENANT/oauth/token).
    #[arg(long, env = "AUTHGATE_TOKEN_URL")]
    pub token_url: Option<String>,
    /// The client id.
    #[arg(long, env = "AUTHGATE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client secret (prefer the environment: arguments show in `ps`).
    #[arg(long, env = "AUTHGATE_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub client_secret: Option<Secret>,
    /// The API identifier to ask a token for.
    #[arg(long, env = "AUTHGATE_AUDIENCE")]
    pub audience: Option<String>,
    /// Scopes to ask for, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// How to send the credentials: `json` body (Auth0) or `basic` with a form body (RFC 6749).
    #[arg(long, value_enum, default_value_t = ClientAuth::Json)]
    pub client_auth: ClientAuth,
    /// Where tokens are cached between runs [default: $XDG_CACHE_HOME/authgate or ~/.cache/authgate].
    #[arg(long, env = "AUTHGATE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the token cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// `authgate token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The client and what to ask for.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `authgate call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The server: http://HOST:PORT for plaintext, https://HOST:PORT for TLS.
    #[arg(long, env = "AUTHGATE_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// A token to send as is, instead of one from the client-credentials grant.
    #[arg(long, env = "AUTHGATE_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<Secret>,
    /// A PEM CA certificate to trust for https (a private CA); system roots otherwise.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// How long the call may take.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Client credentials, when no --token is given.
    #[command(flatten)]
    pub client: ClientArgs,
}

impl ClientArgs {
    /// The token source these flags describe.
    pub(crate) fn token_source(&self) -> Result<TokenSource, Failure> {
        let missing = |what: &str, flag: &str, env: &str| {
            Failure::Usage(format!("no {what}: pass {flag} or set {env}"))
        };
        let endpoint = match (&self.token_url, &self.issuer) {
            (Some(url), _) => TokenEndpoint::Url(
                net::parse_issuer_url("token endpoint", url).map_err(StartupError::from)?,
            ),
            (None, Some(issuer)) => TokenEndpoint::Issuer(
                net::parse_issuer_url("issuer", issuer).map_err(StartupError::from)?,
            ),
            (None, None) => {
                return Err(Failure::Usage(
                    "no token endpoint: pass --issuer or --token-url (or set AUTHGATE_ISSUER or AUTHGATE_TOKEN_URL)"
                        .into(),
                ));
            }
        };
        let client_id = self
            .client_id
            .clone()
            .ok_or_else(|| missing("client id", "--client-id", "AUTHGATE_CLIENT_ID"))?;
        let secret = self
            .client_secret
            .clone()
            .ok_or_else(|| missing("client secret", "--client-secret", "AUTHGATE_CLIENT_SECRET"))?;
        let mut config = TokenSourceConfig::new(endpoint, client_id, secret);
        config.audience = self.audience.clone();
        config.scope = self.scope.clone();
        config.auth = self.client_auth;
        if !self.no_cache {
            config.cache_dir = self.cache_dir.clone().or_else(file_cache::default_dir);
        }
        Ok(TokenSource::new(config)?)
    }
}

pub(super) async fn token(args: TokenArgs) -> Result<(), Failure> {
    let source = args.client.token_source()?;
    // A token read from the cache file may name a key the issuer no longer
    // publishes (a restarted `authgate dev`): every server would refuse it.
    // `call` finds out from the server; `token` asks the issuer's JWKS.
    let cached = source.current();
    let mut token = source.token().await?;
    if cached.is_some_and(|c| c.secret() == token.secret())
        && let Some(issuer) = &args.client.issuer
        && !key_still_published(issuer, token.secret()).await
    {
        tracing::info!(
            "the cached token's key is no longer published; asking the issuer for a new one"
        );
        token = source.renew(&token).await?;
    }
    println!("{}", token.secret());
    Ok(())
}

/// Whether the issuer's JWKS still lists the `kid` in `token`'s header. Any
/// doubt (no `kid`, the JWKS unreachable) counts as yes: the token is the
/// issuer's to judge, and a fresh one is only worth asking for when the
/// answer is a clear no.
async fn key_still_published(issuer: &str, token: &str) -> bool {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let kid = token
        .split('.')
        .next()
        .and_then(|header| URL_SAFE_NO_PAD.decode(header).ok())
        .and_then(|header| serde_json::from_slice::<serde_json::Value>(&header).ok())
        .and_then(|header| header.get("kid")?.as_str().map(str::to_owned));
    let (Some(kid), Ok(url)) = (kid, net::parse_issuer_url("issuer", issuer)) else {
        return true;
    };
    let source = JwksSource::Discovery {
        issuer: issuer.to_owned(),
        url,
    };
    let Ok(mut probe) = Refresher::new(KeyStore::new(), source, RefreshConfig::default()) else {
        return true;
    };
    match probe.fetch().await {
        Ok(keys) => keys.named(&kid).is_some(),
        Err(_) => true,
    }
}

pub(super) async fn call(args: CallArgs) -> Result<(), Failure> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    // With no --token, a token from the client-credentials grant, and its
    // source so that a refused cached token can be replaced once.
    let (source, token) = match &args.token {
        Some(token) => (None, token.expose().to_owned()),
        None => {
            let source = args.client.token_source()?;
            let token = source.token().await?;
            (Some((source, token.clone())), token.secret().to_owned())
        }
    };
    let addr = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let connect_error = |detail: String| Failure::Connect {
        addr: addr.clone(),
        detail,
    };
    let mut endpoint = Endpoint::from_shared(addr.clone())
        .map_err(|e| Failure::Usage(format!("--addr {addr}: {e}")))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout);
    if addr.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| Failure::Usage(format!("cannot read --ca {}: {e}", ca.display())))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| connect_error(e.to_string()))?;
    } else if args.ca.is_some() {
        return Err(Failure::Usage("--ca needs an https:// --addr".into()));
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_error(error_chain(&e)))?;
    let mut client = PrivateServiceClient::new(channel);
    let response = match (get_private(&mut client, &token).await, source) {
        // A cached token the server no longer accepts (the issuer restarted
        // with new keys, say): drop it and try once more with a fresh one.
        (Err(Failure::Call(status)), Some((source, refused)))
            if status.code() == tonic::Code::Unauthenticated =>
        {
            tracing::info!(
                "the server refused the cached token ({}); asking the issuer for a new one",
                status.message()
            );
            let token = source.renew(&refused).await?;
            get_private(&mut client, token.secret()).await?
        }
        (result, _) => result?,
    };
    // The proto3 JSON mapping of GetPrivateResponse, in field order.
    #[derive(serde::Serialize)]
    struct Json {
        message: String,
        subject: String,
        scopes: Vec<String>,
    }
    let json = Json {
        message: response.message,
        subject: response.subject,
        scopes: response.scopes,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json).expect("JSON of strings")
    );
    Ok(())
}

async fn get_private(
    client: &mut PrivateServiceClient<tonic::transport::Channel>,
    token: &str,
) -> Result<GetPrivateResponse, Failure> {
    let mut request = tonic::Request::new(GetPrivateRequest {});
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Failure::Usage("the token has characters a header cannot carry".into()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(client
        .get_private(request)
        .await
        .map_err(Failure::Call)?
        .into_inner())
}
