//! `authgate proxy`: every `serve` setting, and where to forward what the
//! gate lets in.

use super::*;
use crate::proxy::{Cidr, Proxy, UpstreamConfig, UpstreamProtocol};

/// `authgate proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where to forward: http://HOST:PORT (plaintext) or https://HOST:PORT
    /// (TLS, checked against the system roots or --upstream-ca).
    #[arg(long, env = "AUTHGATE_UPSTREAM", value_name = "URL")]
    pub upstream: String,
    /// What the upstream speaks: h2 (gRPC services; prior knowledge on
    /// plaintext), or http1 (an HTTP/1.1-only service such as uvicorn; gRPC
    /// calls to it answer UNIMPLEMENTED).
    #[arg(long, value_enum, value_name = "P", default_value_t = ProtocolArg::H2)]
    pub upstream_protocol: ProtocolArg,
    /// PEM CA certificates for an https:// upstream, instead of the system roots.
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
    /// Also forward this path without a token (health and reflection always
    /// are): exact, or /prefix/* for every path under it. Repeat for more,
    /// or comma-separate them in AUTHGATE_PUBLIC. Public calls carry no
    /// x-authgate-* headers.
    #[arg(
        long = "public",
        env = "AUTHGATE_PUBLIC",
        value_name = "PATH",
        value_delimiter = ',',
        value_parser = parse_public
    )]
    pub public: Vec<String>,
    /// Keep the caller's Authorization for the upstream (removed by default).
    #[arg(long)]
    pub forward_authorization: bool,
    /// Keep the X-Forwarded-For of a peer in this range (a balancer in
    /// front; 10.0.0.0/8, fd00::/8) and append the peer to it; every other
    /// caller's X-Forwarded-*, Forwarded and X-Real-IP are replaced by what
    /// the proxy saw. Repeat for more.
    #[arg(long, value_name = "CIDR")]
    pub trust_forwarded: Vec<Cidr>,
    /// Send the caller's Host (HTTP/1.1) or :authority (HTTP/2) upstream
    /// instead of the upstream's own (X-Forwarded-Host carries it either
    /// way).
    #[arg(long)]
    pub preserve_host: bool,
    /// Every `serve` setting: the gate, the keys, listening, TLS, limits,
    /// metrics, draining and the config file.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `--upstream-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// HTTP/2.
    H2,
    /// HTTP/1.1.
    Http1,
}

pub(super) fn parse_public(s: &str) -> Result<String, String> {
    crate::GateLayer::check_path(s.trim()).map(|()| s.trim().to_owned())
}

impl ProxyArgs {
    /// The upstream these flags describe, its CA read.
    pub fn upstream(&self) -> Result<UpstreamConfig, StartupError> {
        let mut upstream =
            UpstreamConfig::new(self.upstream.trim())?.protocol(match self.upstream_protocol {
                ProtocolArg::H2 => UpstreamProtocol::H2,
                ProtocolArg::Http1 => UpstreamProtocol::Http1,
            });
        if let Some(path) = &self.upstream_ca {
            if !upstream.is_tls() {
                return Err(StartupError::Config(format!(
                    "--upstream-ca is for an https:// upstream; {} is plaintext",
                    upstream.display()
                )));
            }
            let pem = std::fs::read(path).map_err(|e| {
                StartupError::Tls(format!("cannot read --upstream-ca {}: {e}", path.display()))
            })?;
            upstream.ca_pem = Some(pem);
        }
        upstream.forward_authorization = self.forward_authorization;
        upstream.trust_forwarded = self.trust_forwarded.clone();
        upstream.preserve_host = self.preserve_host;
        Ok(upstream)
    }
}

pub(super) async fn proxy(args: ProxyArgs) -> Result<(), StartupError> {
    let settings = args.serve.settings()?;
    let config = settings.server_config()?;
    let upstream = args.upstream()?;
    // Builds the client (and TLS roots) now: a bad CA fails here.
    let proxy = Proxy::new(upstream.clone())?;
    let app = args
        .public
        .iter()
        .fold(Application::builder(config.clone()), |app, path| {
            app.public_path(path.clone())
        });
    // Asks the upstream's reflection for its methods (for the metrics and
    // the scope rules' check), within a few seconds.
    let app = proxy.install(app).await;
    if args.serve.check {
        let warnings = app.check()?;
        let mut more = format!(
            "\n# Forwarding (flags and environment only):\n# upstream = \"{}\"\n\
             # upstream-protocol = \"{}\"\n",
            upstream.display(),
            match upstream.protocol {
                UpstreamProtocol::H2 => "h2",
                UpstreamProtocol::Http1 => "http1",
            }
        );
        if let Some(ca) = &args.upstream_ca {
            more.push_str(&format!("# upstream-ca = \"{}\"\n", ca.display()));
        }
        for path in &args.public {
            more.push_str(&format!("# public = \"{path}\"\n"));
        }
        more.push_str(&format!(
            "# forward-authorization = {}\n",
            upstream.forward_authorization
        ));
        for range in &upstream.trust_forwarded {
            more.push_str(&format!("# trust-forwarded = \"{range}\"\n"));
        }
        more.push_str(&format!("# preserve-host = {}\n", upstream.preserve_host));
        serve::print_check("proxy", &args.serve, &settings, &warnings, &more)?;
        return Ok(());
    }
    tracing::info!(
        upstream = %upstream.display(),
        protocol = ?upstream.protocol,
        public = ?args.public,
        forward_authorization = upstream.forward_authorization,
        "forwarding what the gate lets in"
    );
    serve::run(app, &config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy_args(args: &[&str]) -> Result<ProxyArgs, String> {
        let cli = Cli::try_parse_from(["authgate", "proxy"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Proxy(proxy) => Ok(proxy),
            _ => unreachable!(),
        }
    }

    #[test]
    fn proxy_takes_serve_settings_and_its_own() {
        let args = proxy_args(&[
            "--upstream",
            "http://127.0.0.1:9",
            "--issuer",
            "http://127.0.0.1:8/",
            "--audience",
            "a",
            "--public",
            "/echo.v1.Echo/Unary,/docs/*",
            "--public",
            "/healthz",
            "--upstream-protocol",
            "http1",
            "--require-scope",
            "/admin/*=admin",
        ])
        .unwrap();
        assert_eq!(args.public, ["/echo.v1.Echo/Unary", "/docs/*", "/healthz"]);
        assert_eq!(args.upstream_protocol, ProtocolArg::Http1);
        assert!(!args.forward_authorization);
        assert!(args.serve.config().is_ok());
        assert_eq!(args.upstream().unwrap().protocol, UpstreamProtocol::Http1);
    }

    #[test]
    fn proxy_refuses_what_it_cannot_mean() {
        let base = ["--issuer", "http://127.0.0.1:8/", "--audience", "a"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            proxy_args(&args)
        };
        assert!(with(&[]).is_err(), "--upstream is required");
        assert!(with(&["--upstream", "http://h:1", "--public", "docs/*"]).is_err());
        assert!(with(&["--upstream", "http://h:1", "--upstream-protocol", "h3"]).is_err());
        let plain_ca = with(&["--upstream", "http://h:1", "--upstream-ca", "/x.pem"]).unwrap();
        assert!(plain_ca.upstream().is_err());
        let no_scheme = with(&["--upstream", "h:1"]).unwrap();
        assert!(no_scheme.upstream().is_err());
    }
}
