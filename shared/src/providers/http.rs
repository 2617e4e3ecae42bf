//! The HTTP layer every provider adapter calls through, and the checks that keep it from being
//! turned against our own network.
//!
//! Some providers let the admin choose the API host (LINK Mobility's `endpointHost`, Infobip's
//! `baseUrl`, MessageMedia's regional hosts). Whoever can create a connection could then make our
//! function send requests, with provider credentials attached, to any address it can reach: the
//! cloud metadata service at `169.254.169.254`, an internal admin page, a database on a private
//! subnet (server-side request forgery). Three defences, each covering a hole in the others:
//!
//! - [`validate_admin_host`] refuses, when the connection is saved, anything but a bare public DNS
//!   name: no IP literal, no port, no path, no loopback, private or link-local name.
//! - [`ProviderHttp::admin_host_client`] resolves names with [`PublicOnlyResolver`], which drops
//!   every loopback, private, link-local or otherwise non-public address at connect time, so a
//!   public-looking name that resolves to `127.0.0.1` (or is rebound to it later) gets nowhere.
//!   The addresses it checks are the ones the connection is made to: there is no second lookup
//!   to race.
//! - Neither client follows a redirect: a provider host (or an impostor) answering
//!   `302 Location: http://169.254.169.254/` must not lead us there, and the caller sees the 302.
//!
//! Deployment overrides (`BYOSMS_<PROVIDER>_API_URL`, typically a local mock on loopback) are set
//! by whoever deploys, not by an admin, and go through [`ProviderHttp::client`], which resolves
//! normally.
//!
//! [`error_excerpt`] keeps provider error bodies out of our logs and answers except as a short,
//! single-line excerpt.

use super::SendError;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(20);
const USER_AGENT: &str = concat!("byosms/", env!("CARGO_PKG_VERSION"));

/// The error type of [`reqwest::dns::Resolving`].
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest [`error_excerpt`], in characters, the ellipsis included.
pub const ERROR_EXCERPT_CHARS: usize = 200;

/// Host-name suffixes that only ever name this machine, a local network or a reverse-lookup zone.
/// Each also refuses the bare suffix itself (`localhost`, `home.arpa`).
const NON_PUBLIC_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "internal",
    "localdomain",
    "home.arpa",
    "in-addr.arpa",
    "ip6.arpa",
];

const NOT_AN_IP: &str = "must not be an IP address";
const NOT_LOCAL: &str = "must not be a loopback, private or link-local name";

/// The rule an adapter applies to an admin-typed host field: [`validate_admin_host`], unless the
/// deployment overrides the provider's API URL (`BYOSMS_<PROVIDER>_API_URL`: tests, a sandbox),
/// in which case the host is never called and only has to be a bare, non-empty name.
pub fn admin_host_rule(api_override: Option<&Url>) -> impl Fn(&str) -> Result<String, String> {
    let overridden = api_override.is_some();
    move |input: &str| {
        if !overridden {
            return validate_admin_host(input);
        }
        let host = input.trim();
        if host.is_empty()
            || host.contains(['/', '?', '#', '@'])
            || host.contains(char::is_whitespace)
        {
            Err("must be a bare host name without https:// or a path".into())
        } else {
            Ok(host.to_ascii_lowercase())
        }
    }
}

/// Checks a host an admin typed (LINK Mobility `endpointHost`, Infobip `baseUrl`, MessageMedia
/// regional hosts) and returns it normalized: trimmed, lower-case, without a trailing dot.
///
/// Only a bare, fully qualified DNS name passes: no scheme, port, path, query, credentials or IP
/// literal, and no name that can only mean this machine or a local network. Internationalized
/// names are accepted in their ASCII (`xn--`) form only. The error is the broken rule as a
/// sentence for the admin, e.g. "must not contain a port".
///
/// IP literals must be refused here, not only by [`PublicOnlyResolver`]: reqwest (hyper-util's
/// connector) connects to a URL's IP-literal host directly and never calls the resolver, so
/// `https://169.254.169.254/` would reach the metadata service through any client. Numeric forms
/// the URL parser reads as IPv4 (`127.1`, `0x7f.0.0.1`, `2130706433`: any name whose last label is
/// a number) are refused for the same reason.
pub fn validate_admin_host(input: &str) -> Result<String, String> {
    let host = input.trim();
    if host.is_empty() {
        return Err("must not be empty".into());
    }
    if host.contains("://") {
        return Err("must be a bare host name without https://".into());
    }
    if host.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".into());
    }
    if host.starts_with('[') || is_ipv6_literal(host) {
        return Err(NOT_AN_IP.into());
    }
    for (c, rule) in [
        ('@', "must not contain user credentials (@)"),
        ('/', "must not contain a path (/)"),
        ('?', "must not contain a query (?)"),
        ('#', "must not contain a fragment (#)"),
        (':', "must not contain a port"),
    ] {
        if host.contains(c) {
            return Err(rule.into());
        }
    }
    if !host.is_ascii() {
        return Err(
            "must be written in ASCII; give an internationalized name in its xn-- form".into(),
        );
    }

    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.last().is_some_and(|last| is_numeric_label(last)) {
        return Err(NOT_AN_IP.into());
    }
    if NON_PUBLIC_SUFFIXES
        .iter()
        .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")))
    {
        return Err(NOT_LOCAL.into());
    }
    if host.len() > 253 {
        return Err("must be at most 253 characters long".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err(
                "must not contain an empty label (two dots in a row or a leading dot)".into(),
            );
        }
        if label.len() > 63 {
            return Err("must not contain a label longer than 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("may contain only letters, digits, hyphens and dots".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("must not contain a label that starts or ends with a hyphen".into());
        }
    }
    if labels.len() < 2 {
        return Err("must be a fully qualified name such as api.example.com".into());
    }
    // The name must reach the connector exactly as checked: the URL parser is what turns it into
    // the host reqwest connects to. It rejects malformed `xn--` labels, and a numeric form missed
    // above would come out as an IPv4 address, not this name.
    match Url::parse(&format!("https://{host}/")) {
        Ok(url) if url.host_str() == Some(host) => Ok(host.to_owned()),
        _ => Err("is not a valid host name".into()),
    }
}

/// `::1`, `fe80::1%eth0` and the like, without brackets.
fn is_ipv6_literal(host: &str) -> bool {
    let without_zone = host.split_once('%').map_or(host, |(addr, _)| addr);
    without_zone.parse::<Ipv6Addr>().is_ok()
}

/// A label the WHATWG URL parser reads as an IPv4 number: decimal, `0x` hexadecimal or (leading
/// zero) octal. When the last label is one, the whole host is parsed as an IPv4 address.
fn is_numeric_label(label: &str) -> bool {
    if label.is_empty() {
        return false;
    }
    if let Some(hex) = label.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    label.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an address is on the public internet: false for loopback, unspecified, private,
/// shared (CGNAT), link-local (the cloud metadata address `169.254.169.254` among them),
/// broadcast, documentation, benchmarking, multicast and reserved ranges, and their IPv6
/// counterparts. IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address.
///
/// Written by hand: std's `Ipv4Addr::is_global`/`Ipv6Addr::is_global` and the range helpers they
/// use are unstable, and the crates that offer the same are not worth a dependency for a few
/// prefix comparisons.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => is_public_ipv6(v6),
    }
}

fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        // 0.0.0.0/8 "this network"
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT)
        || (a == 100 && (b & 0b1100_0000) == 64)
        // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 0)
        // 192.88.99.0/24 the deprecated 6to4 relay anycast
        || (a == 192 && b == 88 && c == 99)
        // 198.18.0.0/15 benchmarking
        || (a == 198 && (b & 0b1111_1110) == 18)
        // 240.0.0.0/4 reserved (255.255.255.255 included)
        || a >= 240;
    !non_public
}

fn is_public_ipv6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    if let Some(embedded) = embedded_ipv4(ip) {
        return is_public_ipv4(embedded);
    }
    let s = ip.segments();
    // Global unicast is allocated from 2000::/3 only: everything else (unique-local fc00::/7,
    // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard-only 100::/64,
    // local-use NAT64 64:ff9b:1::/48, IPv4-translated ::ffff:0:0:0/96, the rest of ::/8) is not
    // on the public internet. The named checks are there for the reader; the last one decides.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let non_public = ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || !global_unicast
        // 2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)
        || (s[0] == 0x2001 && s[1] < 0x200)
        // 2001:db8::/32 documentation
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        // 3fff::/20 documentation (RFC 9637)
        || (s[0] == 0x3fff && s[1] < 0x1000);
    !non_public
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that carry one.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let octets = ip.octets();
    let low32 = || Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    // ::a.b.c.d IPv4-compatible (deprecated); `::` and `::1` are handled before this is asked.
    if s[..6].iter().all(|&seg| seg == 0) {
        return Some(low32());
    }
    // 64:ff9b::/96 the well-known NAT64 prefix
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&seg| seg == 0) {
        return Some(low32());
    }
    // 2002:aabb:ccdd::/48 6to4
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// A name resolved only to addresses [`is_public_ip`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves only to non-public addresses")]
pub struct NonPublicHostError {
    pub host: String,
}

/// The resolver of [`ProviderHttp::admin_host_client`]: the system resolver, keeping only public
/// addresses. The addresses are not named in the error: they are ours to know, not the admin's.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public = public_addrs(&host, resolved)?;
            let addrs: Addrs = Box::new(public.into_iter());
            Ok::<_, BoxError>(addrs)
        })
    }
}

/// The public addresses among a host's resolved addresses; an error when there are none.
fn public_addrs(
    host: &str,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, NonPublicHostError> {
    let public: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| is_public_ip(addr.ip()))
        .collect();
    if public.is_empty() {
        Err(NonPublicHostError {
            host: host.to_owned(),
        })
    } else {
        Ok(public)
    }
}

/// The two HTTP clients provider adapters use, built on first use: the webhook functions never
/// call a provider, and building a client loads the TLS roots (work a cold start would pay for
/// nothing). The send function builds them at init with [`ProviderHttp::build_now`]. Cheap to
/// clone: clones share the clients, and each `reqwest::Client` is a handle to a shared pool.
#[derive(Clone)]
pub struct ProviderHttp {
    clients: Arc<std::sync::OnceLock<Clients>>,
    connect: Duration,
    total: Duration,
    admin_resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHttp")
            .field("built", &self.clients.get().is_some())
            .field("connect_timeout", &self.connect)
            .field("timeout", &self.total)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Clients {
    client: reqwest::Client,
    admin_host_client: reqwest::Client,
}

impl Default for ProviderHttp {
    fn default() -> Self {
        ProviderHttp::new()
    }
}

impl ProviderHttp {
    /// Connect timeout 5 s, whole request 20 s.
    pub fn new() -> Self {
        ProviderHttp::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT)
    }

    pub fn with_timeouts(connect: Duration, total: Duration) -> Self {
        ProviderHttp::with_admin_resolver(connect, total, Arc::new(PublicOnlyResolver))
    }

    /// For fixed provider hosts (`api.twilio.com`) and deployment overrides
    /// (`BYOSMS_<PROVIDER>_API_URL`, which may well be a mock on loopback). Never for a host an
    /// admin typed, unless such an override replaces it.
    pub fn client(&self) -> &reqwest::Client {
        &self.clients().client
    }

    /// For hosts an admin typed (checked by [`validate_admin_host`] when saved): connects only to
    /// public addresses, and ignores `HTTP(S)_PROXY`, since a proxy would resolve the name
    /// itself, out of [`PublicOnlyResolver`]'s reach.
    pub fn admin_host_client(&self) -> &reqwest::Client {
        &self.clients().admin_host_client
    }

    /// Builds both clients now (where a cold start pays less: Lambda's init), not on first use.
    pub fn build_now(&self) {
        self.clients();
    }

    fn clients(&self) -> &Clients {
        self.clients.get_or_init(|| {
            // One TLS configuration for both: its verifier loads and parses the system's root
            // certificates when it is made (~140 on Lambda's image, about a millisecond), which
            // each client would otherwise do again for itself at every cold start.
            let tls = provider_tls();
            Clients {
                client: build(base_builder(self.connect, self.total, tls.clone())),
                admin_host_client: build(
                    base_builder(self.connect, self.total, tls)
                        .no_proxy()
                        .dns_resolver(self.admin_resolver.clone()),
                ),
            }
        })
    }

    /// The resolver is a parameter only so that tests can show the admin-host client's other
    /// settings (no redirects) against a server on loopback.
    fn with_admin_resolver(
        connect: Duration,
        total: Duration,
        admin_resolver: Arc<dyn Resolve>,
    ) -> Self {
        ProviderHttp {
            clients: Arc::default(),
            connect,
            total,
            admin_resolver,
        }
    }
}

/// What reqwest's own rustls set-up is (aws-lc, TLS 1.2 and 1.3, the platform's verifier of the
/// system roots), made once so that both clients share it.
fn provider_tls() -> rustls::ClientConfig {
    use rustls_platform_verifier::BuilderVerifierExt;
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|config| config.with_platform_verifier())
    .map(|config| config.with_no_client_auth())
    // As reqwest's own `build` would: it fails only without a usable root store.
    .expect("a TLS configuration with the system's root certificates")
}

/// The settings both clients share (those of `config::http_client`, plus no redirects).
fn base_builder(
    connect: Duration,
    total: Duration,
    tls: rustls::ClientConfig,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .timeout(total)
        .user_agent(USER_AGENT)
}

fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    // `build` fails only when the TLS backend cannot be initialized (rustls is compiled in and
    // needs no system state) or hickory-dns cannot read the system configuration (not enabled).
    builder.build().expect("the TLS backend is compiled in")
}

/// A provider's error body made fit for a log line or an error message: control characters
/// replaced by spaces, whitespace runs collapsed to one space, and at most
/// [`ERROR_EXCERPT_CHARS`] characters, ending in `…` when cut.
pub fn error_excerpt(body: &str) -> String {
    let mut cleaned = String::with_capacity(body.len().min(4 * ERROR_EXCERPT_CHARS));
    let mut chars = 0;
    let mut cut = false;
    let mut pending_space = false;
    for c in body.chars() {
        if c.is_whitespace() || c.is_control() || is_bidi_control(c) {
            pending_space = !cleaned.is_empty();
            continue;
        }
        let needed = usize::from(pending_space) + 1;
        if chars + needed > ERROR_EXCERPT_CHARS {
            cut = true;
            break;
        }
        if pending_space {
            cleaned.push(' ');
            pending_space = false;
        }
        cleaned.push(c);
        chars += needed;
    }
    if !cut {
        return cleaned;
    }
    // Make room for the ellipsis, without leaving a space before it.
    let mut excerpt: String = cleaned.chars().take(ERROR_EXCERPT_CHARS - 1).collect();
    excerpt.truncate(excerpt.trim_end().len());
    excerpt.push('…');
    excerpt
}

/// Characters that reorder the text around them on a terminal (a log line that reads differently
/// from what it contains).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Joins a base URL, possibly with a path prefix (`http://127.0.0.1:4010/twilio`, with or without
/// a trailing slash), and an API path (`/2010-04-01/Accounts/...`) with exactly one slash between
/// them. The base's query and fragment, if any, are dropped; the path may carry its own query.
pub fn join_path(base: &Url, path: &str) -> String {
    let mut base = base.clone();
    base.set_query(None);
    base.set_fragment(None);
    let base = base.as_str().trim_end_matches('/');
    let path = path.trim_start_matches('/');
    format!("{base}/{path}")
}

/// A provider's whole answer to a request: its HTTP status, the wait its `Retry-After` asks
/// for, and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// Sends a provider request and reads its whole answer. A transport failure is classified by
/// whether the request can have left ([`SendError::from_transport`]): only a failure to connect
/// may be sent again.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<ProviderAnswer, SendError> {
    let response = request
        .send()
        .await
        .map_err(|e| SendError::from_transport(&e))?;
    let status = response.status().as_u16();
    let retry_after = super::retry_after(response.headers());
    let body = response
        .text()
        .await
        .map_err(|e| SendError::from_transport(&e))?;
    Ok(ProviderAnswer {
        status,
        retry_after,
        body,
    })
}

#[cfg(test)]
mod tests {

    /// The clients are built on first use or by `build_now`, once, and clones share them.
    #[test]
    fn the_clients_are_built_once_when_first_needed() {
        let http = ProviderHttp::new();
        let clone = http.clone();
        assert!(format!("{http:?}").contains("built: false"), "{http:?}");
        let _ = clone.client();
        assert!(format!("{http:?}").contains("built: true"), "{http:?}");
        let first: *const reqwest::Client = http.admin_host_client();
        http.build_now();
        assert!(std::ptr::eq(first, clone.admin_host_client()));
    }

    #[test]
    fn an_api_url_override_relaxes_the_admin_host_rule() {
        let strict = admin_host_rule(None);
        assert!(strict("localhost").is_err());
        assert_eq!(strict("API.Example.com").as_deref(), Ok("api.example.com"));
        let sandbox: Url = "http://127.0.0.1:4010/linkmobility".parse().unwrap();
        let relaxed = admin_host_rule(Some(&sandbox));
        assert_eq!(relaxed("localhost").as_deref(), Ok("localhost"));
        assert!(relaxed("https://x.example.com/path").is_err());
        assert!(relaxed("  ").is_err());
    }
    use super::*;

    #[test]
    fn accepts_bare_public_host_names_and_normalizes_them() {
        for (input, expected) in [
            ("api.linkmobility.eu", "api.linkmobility.eu"),
            ("  XYZ123.api.INFOBIP.com  ", "xyz123.api.infobip.com"),
            ("api.messagemedia.com.", "api.messagemedia.com"),
            ("eu-1.api.example.co.uk", "eu-1.api.example.co.uk"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("xn--mnchen-3ya.example", "xn--mnchen-3ya.example"),
            ("a1.b2", "a1.b2"),
            ("123.example.com", "123.example.com"),
            ("0x7f.example.com", "0x7f.example.com"),
            ("local.example.com", "local.example.com"),
            ("localhost.example.com", "localhost.example.com"),
            (
                &format!("{}.com", "a".repeat(63)),
                &format!("{}.com", "a".repeat(63)),
            ),
        ] {
            assert_eq!(
                validate_admin_host(input).as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
        // 253 characters: 63 + 1 + 63 + 1 + 63 + 1 + 61.
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(longest.len(), 253);
        assert_eq!(validate_admin_host(&longest), Ok(longest.clone()));
    }

    #[test]
    fn refuses_everything_but_a_bare_public_host_name() {
        let too_long_name = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62),
        ]
        .join(".");
        let too_long_label = format!("{}.com", "a".repeat(64));
        let cases: &[(&str, &str)] = &[
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("https://api.infobip.com", "without https://"),
            ("http://api.infobip.com", "without https://"),
            ("ftp://api.infobip.com", "without https://"),
            ("api.infobip .com", "spaces"),
            ("api.infobip\t.com", "spaces"),
            ("api.infobip.com/sms", "path"),
            ("api.infobip.com/", "path"),
            ("//api.infobip.com", "path"),
            ("api.infobip.com?x=1", "query"),
            ("api.infobip.com#x", "fragment"),
            ("user@api.infobip.com", "credentials"),
            ("user:pass@api.infobip.com", "credentials"),
            ("api.infobip.com:443", "port"),
            ("api.infobip.com:", "port"),
            // IPv4 literals, in every form the URL parser reads as one
            ("127.0.0.1", NOT_AN_IP),
            ("169.254.169.254", NOT_AN_IP),
            ("10.0.0.1", NOT_AN_IP),
            ("8.8.8.8", NOT_AN_IP),
            ("127.1", NOT_AN_IP),
            ("0x7f.0.0.1", NOT_AN_IP),
            ("0x7f000001", NOT_AN_IP),
            ("2130706433", NOT_AN_IP),
            ("0177.0.0.1", NOT_AN_IP),
            ("example.0x1", NOT_AN_IP),
            ("example.123", NOT_AN_IP),
            ("example.123.", NOT_AN_IP),
            ("127.0.0.1:80", "port"),
            // IPv6 literals, with or without brackets
            ("::1", NOT_AN_IP),
            ("[::1]", NOT_AN_IP),
            ("[::1]:443", NOT_AN_IP),
            ("fe80::1%eth0", NOT_AN_IP),
            ("::ffff:169.254.169.254", NOT_AN_IP),
            ("[fd00:ec2::254]", NOT_AN_IP),
            ("2606:4700::1111", NOT_AN_IP),
            // names of this machine, local networks and reverse zones
            ("localhost", NOT_LOCAL),
            ("LOCALHOST.", NOT_LOCAL),
            ("api.localhost", NOT_LOCAL),
            ("printer.local", NOT_LOCAL),
            ("metadata.google.internal", NOT_LOCAL),
            ("internal", NOT_LOCAL),
            ("box.localdomain", NOT_LOCAL),
            ("router.home.arpa", NOT_LOCAL),
            ("1.0.0.127.in-addr.arpa", NOT_LOCAL),
            ("in-addr.arpa", NOT_LOCAL),
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
                NOT_LOCAL,
            ),
            // DNS name syntax
            ("example", "fully qualified"),
            ("example.", "fully qualified"),
            (".example.com", "empty label"),
            ("api..example.com", "empty label"),
            ("api.example.com..", "empty label"),
            (".", "empty label"),
            (&too_long_label, "longer than 63"),
            (&too_long_name, "at most 253"),
            (
                "api_1.example.com",
                "only letters, digits, hyphens and dots",
            ),
            ("api*.example.com", "only letters, digits, hyphens and dots"),
            (
                "api%2e.example.com",
                "only letters, digits, hyphens and dots",
            ),
            ("-api.example.com", "hyphen"),
            ("api-.example.com", "hyphen"),
            ("api.example-.com", "hyphen"),
            ("bücher.example", "xn--"),
            ("api.еxample.com", "xn--"), // Cyrillic е
            ("xn--a.example", "not a valid host name"),
            ("xn--bcher-kva9.example", "not a valid host name"),
        ];
        for (input, rule) in cases {
            match validate_admin_host(input) {
                Ok(host) => panic!("{input:?} was accepted as {host:?}"),
                Err(message) => assert!(
                    message.contains(rule),
                    "{input:?}: {message:?} does not say {rule:?}"
                ),
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_public() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "52.94.236.248",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a05:d018::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public_ip(ip(addr)), "{addr} should be public");
        }
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for addr in [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.0.1",
            "169.254.169.254",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
            "3fff:fff::1",
            "100::1",
            "64:ff9b:1::1",
            "::ffff:0:808:808",
            "5f00::1",
            "4000::1",
            // IPv6 carrying a non-public IPv4
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!is_public_ip(ip(addr)), "{addr} should not be public");
        }
    }

    #[test]
    fn public_addrs_keeps_only_public_ones() {
        let resolved: Vec<SocketAddr> = ["127.0.0.1:0", "8.8.8.8:0", "[fe80::1]:0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            public_addrs("mixed.example", resolved),
            Ok(vec!["8.8.8.8:0".parse().unwrap()])
        );
        let err = public_addrs("evil.example", ["169.254.169.254:0".parse().unwrap()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "evil.example resolves only to non-public addresses"
        );
    }

    #[tokio::test]
    async fn resolver_refuses_localhost() {
        let err = match PublicOnlyResolver
            .resolve("localhost".parse().unwrap())
            .await
        {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert_eq!(
            err.to_string(),
            "localhost resolves only to non-public addresses"
        );
        assert!(!err.to_string().contains("127.0.0.1"));
        let typed = err.downcast_ref::<NonPublicHostError>().unwrap();
        assert_eq!(typed.host, "localhost");
    }

    /// The error and its sources, as one string.
    fn error_chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        text
    }

    async fn ok_server() -> wiremock::MockServer {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path("/"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("hello"))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn admin_host_client_refuses_a_name_on_loopback_while_client_reaches_it() {
        let server = ok_server().await;
        let url = server.uri().replace("127.0.0.1", "localhost") + "/";
        let http = ProviderHttp::new();

        let err = http.admin_host_client().get(&url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let chain = error_chain(&err);
        assert!(
            chain.contains("localhost resolves only to non-public addresses"),
            "{chain}"
        );

        let response = http.client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "hello");
        let user_agent = server.received_requests().await.unwrap()[0]
            .headers
            .get("user-agent")
            .cloned();
        assert_eq!(
            user_agent.as_ref().and_then(|v| v.to_str().ok()),
            Some(USER_AGENT)
        );
    }

    /// Why [`validate_admin_host`] must refuse IP literals: the resolver is never asked about them.
    #[tokio::test]
    async fn an_ip_literal_bypasses_the_resolver() {
        let server = ok_server().await;
        let url = server.uri() + "/";
        assert!(url.starts_with("http://127.0.0.1:"));
        let response = ProviderHttp::new()
            .admin_host_client()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Resolves every name to one address (to reach a loopback server through the admin-host
    /// client's other settings).
    struct FixedResolver(SocketAddr);

    impl Resolve for FixedResolver {
        fn resolve(&self, _: Name) -> Resolving {
            let addrs: Addrs = Box::new(std::iter::once(self.0));
            Box::pin(std::future::ready(Ok(addrs)))
        }
    }

    #[tokio::test]
    async fn neither_client_follows_a_redirect() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/start"))
            .respond_with(
                wiremock::ResponseTemplate::new(302).insert_header("location", "/elsewhere"),
            )
            .mount(&server)
            .await;
        wiremock::Mock::given(wiremock::matchers::path("/elsewhere"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let http = ProviderHttp::with_admin_resolver(
            CONNECT_TIMEOUT,
            TOTAL_TIMEOUT,
            Arc::new(FixedResolver(*server.address())),
        );
        let port = server.address().port();

        let direct = format!("http://localhost:{port}/start");
        let response = http.client().get(&direct).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/elsewhere");

        let admin = format!("http://provider.example:{port}/start");
        let response = http.admin_host_client().get(&admin).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/elsewhere");

        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        server.verify().await;
    }

    #[test]
    fn error_excerpt_cleans_and_cuts() {
        assert_eq!(error_excerpt(""), "");
        assert_eq!(error_excerpt("  \n\t "), "");
        assert_eq!(
            error_excerpt("{\"code\": 21211,\r\n  \"message\":\t\"bad\"}\n"),
            "{\"code\": 21211, \"message\": \"bad\"}"
        );
        assert_eq!(error_excerpt("a\u{0}b\u{1b}[31mc\u{7f}d"), "a b [31mc d");
        assert_eq!(error_excerpt("evil\u{202e}txt.exe"), "evil txt.exe");
        assert_eq!(error_excerpt("line\u{2028}next"), "line next");

        let exact = "x".repeat(ERROR_EXCERPT_CHARS);
        assert_eq!(error_excerpt(&exact), exact);

        let long = "é".repeat(500);
        let excerpt = error_excerpt(&long);
        assert_eq!(excerpt.chars().count(), ERROR_EXCERPT_CHARS);
        assert!(excerpt.ends_with("é…"));

        // A whitespace run at the cut does not leave a space before the ellipsis.
        let words = format!("{} {}", "a".repeat(198), "b".repeat(10));
        assert_eq!(error_excerpt(&words), format!("{}…", "a".repeat(198)));

        // Multi-byte characters never split, and whitespace removed does not count.
        let spaced = format!("{}{}", " ".repeat(1000), "日本".repeat(150));
        let excerpt = error_excerpt(&spaced);
        assert_eq!(excerpt.chars().count(), ERROR_EXCERPT_CHARS);
        assert!(excerpt.starts_with("日本"));
        assert!(excerpt.ends_with('…'));
    }

    #[test]
    fn join_path_puts_one_slash_between_base_and_path() {
        let url = |s: &str| Url::parse(s).unwrap();
        for (base, path, expected) in [
            (
                "https://api.twilio.com",
                "/2010-04-01/Accounts/AC1/Messages.json",
                "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            ),
            (
                "https://api.twilio.com/",
                "/2010-04-01/Accounts",
                "https://api.twilio.com/2010-04-01/Accounts",
            ),
            (
                "http://127.0.0.1:4010/twilio",
                "/2010-04-01/Accounts",
                "http://127.0.0.1:4010/twilio/2010-04-01/Accounts",
            ),
            (
                "http://127.0.0.1:4010/twilio/",
                "/2010-04-01/Accounts",
                "http://127.0.0.1:4010/twilio/2010-04-01/Accounts",
            ),
            (
                "http://127.0.0.1:4010/a/b/",
                "v1/messages",
                "http://127.0.0.1:4010/a/b/v1/messages",
            ),
            (
                "http://127.0.0.1:4010/mock?x=1#frag",
                "/v1/messages?page=2",
                "http://127.0.0.1:4010/mock/v1/messages?page=2",
            ),
        ] {
            assert_eq!(join_path(&url(base), path), expected, "{base} + {path}");
        }
    }
}
