//! What `authgate dev` prints on start: the values a newcomer needs, and
//! commands that work when pasted.

use std::{net::SocketAddr, time::Duration};

use crate::ScopeRule;

pub(super) struct DevBanner<'a> {
    /// Each dev issuer's URL and a token it signed.
    pub(super) tokens: &'a [(String, String)],
    pub(super) audience: &'a str,
    pub(super) client_id: &'a str,
    pub(super) client_secret: &'a str,
    pub(super) addr: SocketAddr,
    pub(super) metrics: Option<SocketAddr>,
    pub(super) tls: bool,
    pub(super) policy: &'a [ScopeRule],
    /// The scopes the dev client is granted, space-separated.
    pub(super) granted: &'a str,
    pub(super) ttl: Duration,
    /// How the user ran authgate, for commands they can paste.
    pub(super) program: &'a str,
}

/// What `authgate dev` prints on stdout: the values a newcomer needs, and
/// commands that work when pasted. Printing the dev secret and token is the
/// point of dev mode; nothing else in authgate prints either.
pub(super) fn print_dev_banner(b: &DevBanner<'_>) {
    let rules: Vec<String> = b
        .policy
        .iter()
        .map(|r| match r.any_of.as_slice() {
            [one] => format!("{} needs scope {one}", r.method),
            several => format!("{} needs one of {}", r.method, several.join(", ")),
        })
        .collect();
    let plaintext = if b.tls { "" } else { "-plaintext " };
    let issuer = &b.tokens[0].0;
    let mut issuers = format!("  issuer         {issuer}\n");
    for (other, _) in &b.tokens[1..] {
        issuers.push_str(&format!("  second issuer  {other}\n"));
    }
    let mut minted = String::new();
    let mut grpcurl = String::new();
    for (url, token) in b.tokens {
        if b.tokens.len() > 1 {
            minted.push_str(&format!("From {url}:\n\n"));
        }
        minted.push_str(&format!("{token}\n\n"));
        grpcurl.push_str(&format!(
            "  grpcurl {plaintext}-H 'authorization: Bearer {token}' {addr} authgate.v1.PrivateService/GetPrivate\n",
            addr = b.addr
        ));
    }
    let scheme = if b.tls { "https" } else { "http" };
    let curl = format!(
        "  curl -H 'Authorization: Bearer {token}' {scheme}://{addr}/\n",
        token = b.tokens[0].1,
        addr = b.addr
    );
    let each = if b.tokens.len() > 1 {
        "A token for the dev client from each issuer"
    } else {
        "A token for the dev client"
    };
    println!(
        "authgate dev: {local} and the guarded gRPC server, no account needed.\n\
         \n\
         {issuers}\
         \x20 audience       {audience}\n\
         \x20 client id      {client_id}\n\
         \x20 client secret  {client_secret}\n\
         \x20 gRPC           {addr}{tls}\n\
         \x20 metrics        {metrics}\n\
         \x20 scopes         {rules}\n\
         \n\
         {each} (valid {ttl}, scope {granted}):\n\
         \n\
         {minted}\
         Call GetPrivate with grpcurl (reflection is on, no .proto needed):\n\
         \n\
         {grpcurl}\
         \n\
         Or GET / over plain HTTP, the seed's route, on the same port:\n\
         \n\
         {curl}\
         \n\
         Without a token, to see UNAUTHENTICATED:\n\
         \n\
         \x20 grpcurl {plaintext}{addr} authgate.v1.PrivateService/GetPrivate\n\
         \n\
         Or let authgate get tokens with the dev client's credentials (client-credentials grant):\n\
         \n\
         \x20 export AUTHGATE_ISSUER={issuer} AUTHGATE_AUDIENCE={audience}\n\
         \x20 export AUTHGATE_CLIENT_ID={client_id} AUTHGATE_CLIENT_SECRET={client_secret}\n\
         \x20 {program} token\n\
         \x20 {program} call --addr {scheme}://{addr}\n\
         \n\
         Ctrl-C stops {all}.",
        local = if b.tokens.len() > 1 {
            "two local issuers"
        } else {
            "a local issuer"
        },
        program = b.program,
        audience = b.audience,
        client_id = b.client_id,
        client_secret = b.client_secret,
        addr = b.addr,
        tls = if b.tls { " (TLS)" } else { " (plaintext)" },
        metrics = b
            .metrics
            .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics")),
        rules = if rules.is_empty() {
            "any valid token".to_owned()
        } else {
            rules.join("; ")
        },
        ttl = humantime::format_duration(b.ttl),
        granted = b.granted,
        all = if b.tokens.len() > 1 {
            "them all"
        } else {
            "both"
        },
    );
}

/// What `authgate dev --authz` prints: where authz answers, a token, a
/// question asked as nginx's `auth_request` asks it, and nginx in front.
pub(super) fn print_authz_banner(b: &DevBanner<'_>) {
    let (issuer, token) = &b.tokens[0];
    let scheme = if b.tls { "https" } else { "http" };
    println!(
        "authgate dev --authz: a local issuer and authgate authz, no account needed.\n\
         \n\
         \x20 issuer         {issuer}\n\
         \x20 audience       {audience}\n\
         \x20 client id      {client_id}\n\
         \x20 client secret  {client_secret}\n\
         \x20 authz          {addr} (Check over gRPC; forward auth over HTTP)\n\
         \x20 metrics        {metrics}\n\
         \n\
         A token for the dev client (valid {ttl}, scope {granted}):\n\
         \n\
         {token}\n\
         \n\
         Ask it as nginx's auth_request does (200 and who called; without the token, 401):\n\
         \n\
         \x20 curl -i -H 'Authorization: Bearer {token}' -H 'X-Forwarded-Uri: /items' {scheme}://{addr}/\n\
         \n\
         Or put nginx in front of a service on 127.0.0.1:8000 (docs/authz.md has Caddy,\n\
         Traefik, Envoy and Istio too):\n\
         \n\
         \x20 server {{\n\
         \x20     listen 127.0.0.1:8080;\n\
         \x20     location / {{\n\
         \x20         auth_request /_authgate;\n\
         \x20         auth_request_set $authgate_subject $upstream_http_x_authgate_subject;\n\
         \x20         proxy_set_header X-Authgate-Subject $authgate_subject;\n\
         \x20         proxy_pass http://127.0.0.1:8000;\n\
         \x20     }}\n\
         \x20     location = /_authgate {{\n\
         \x20         internal;\n\
         \x20         proxy_pass {scheme}://{addr};\n\
         \x20         proxy_pass_request_body off;\n\
         \x20         proxy_set_header Content-Length \"\";\n\
         \x20         proxy_set_header X-Forwarded-Method $request_method;\n\
         \x20         proxy_set_header X-Forwarded-Uri $request_uri;\n\
         \x20     }}\n\
         \x20 }}\n\
         \n\
         \x20 curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8080/\n\
         \n\
         Ctrl-C stops both.",
        audience = b.audience,
        client_id = b.client_id,
        client_secret = b.client_secret,
        addr = b.addr,
        metrics = b
            .metrics
            .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics")),
        ttl = humantime::format_duration(b.ttl),
        granted = b.granted,
    );
}
