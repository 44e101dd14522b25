//! `authgate authz`: every `serve` setting, `proxy`'s `--public` and
//! `--forward-authorization`, and where forward auth finds the original
//! path.

use super::*;
use crate::authz::Authz;

/// `authgate authz`.
#[derive(Debug, Args)]
pub struct AuthzArgs {
    /// Also allow this path without a token (health and reflection, as gRPC,
    /// always are): exact, or /prefix/* for every path under it. Repeat for
    /// more, or comma-separate them in AUTHGATE_PUBLIC. Public requests get
    /// no x-authgate-* headers.
    #[arg(
        long = "public",
        env = "AUTHGATE_PUBLIC",
        value_name = "PATH",
        value_delimiter = ',',
        value_parser = proxy::parse_public
    )]
    pub public: Vec<String>,
    /// Keep the caller's Authorization for the upstream (Check asks Envoy to
    /// remove it by default).
    #[arg(long)]
    pub forward_authorization: bool,
    /// HTTP forward auth without X-Forwarded-Uri or X-Original-URI: the
    /// original path is the request's own less this prefix (Envoy's HTTP
    /// ext_authz path_prefix).
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "",
        hide_default_value = true
    )]
    pub path_prefix: String,
    /// Every `serve` setting: the gate, the keys, listening, TLS, limits,
    /// metrics, draining and the config file.
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub(super) async fn authz(args: AuthzArgs) -> Result<(), StartupError> {
    let settings = args.serve.settings()?;
    let config = settings.server_config()?;
    let app = args
        .public
        .iter()
        .fold(Application::builder(config.clone()), |app, path| {
            app.public_path(path.clone())
        });
    let app = Authz::new()
        .forward_authorization(args.forward_authorization)
        .path_prefix(args.path_prefix.clone())
        .install(app);
    if args.serve.check {
        let warnings = app.check()?;
        let mut more = String::from("\n# Answering for a proxy (flags and environment only):\n");
        for path in &args.public {
            more.push_str(&format!("# public = \"{path}\"\n"));
        }
        more.push_str(&format!(
            "# forward-authorization = {}\n# path-prefix = \"{}\"\n",
            args.forward_authorization, args.path_prefix
        ));
        serve::print_check("authz", &args.serve, &settings, &warnings, &more)?;
        return Ok(());
    }
    tracing::info!(
        public = ?args.public,
        forward_authorization = args.forward_authorization,
        path_prefix = %args.path_prefix,
        "answering Check and forward auth for the proxy in front"
    );
    serve::run(app, &config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authz_args(args: &[&str]) -> Result<AuthzArgs, String> {
        let cli = Cli::try_parse_from(["authgate", "authz"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Authz(authz) => Ok(authz),
            _ => unreachable!(),
        }
    }

    #[test]
    fn authz_takes_serve_settings_and_its_own() {
        let args = authz_args(&[
            "--issuer",
            "http://127.0.0.1:8/",
            "--audience",
            "a",
            "--public",
            "/healthz,/docs/*",
            "--path-prefix",
            "/authz",
            "--forward-authorization",
            "--require-scope",
            "POST /items=items:write",
        ])
        .unwrap();
        assert_eq!(args.public, ["/healthz", "/docs/*"]);
        assert_eq!(args.path_prefix, "/authz");
        assert!(args.forward_authorization);
        assert!(args.serve.config().is_ok());
        let base = ["--issuer", "http://127.0.0.1:8/", "--audience", "a"];
        let bad: Vec<&str> = base.iter().copied().chain(["--public", "docs"]).collect();
        assert!(authz_args(&bad).is_err());
    }
}
