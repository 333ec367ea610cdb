//! Where the hub may send requests. A channel's settings name URLs the hub calls (the Botpress
//! webhook, the Botpress API); whoever sets them must not be able to point the hub at its own
//! network (a cloud metadata service, an admin port on loopback). So, unless the hub runs with
//! `BATON_ALLOW_PRIVATE_URLS=1` (tests, solo mode on a laptop):
//! - URLs must be `https` and name a public host — checked when they are set, and again for every
//!   address a host name resolves to when a request is made (so DNS cannot point it elsewhere later);
//! - redirects are never followed.
//!
//! Errors never carry the URL: a webhook URL is a credential (anyone who has it can post as an agent).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

/// Checks a URL an admin gives the hub to call. `what` names it in the error.
pub fn check_url(url: &str, allow_private: bool, what: &str) -> Result<Url, String> {
    let parsed = Url::parse(url.trim()).map_err(|_| format!("the {what} is not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(format!(
                "the {what} must be https:// (plain http is only for tests, with {}=1)",
                crate::ALLOW_PRIVATE_URLS_ENV
            ))
        }
        _ => return Err(format!("the {what} must be an https:// URL")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("the {what} must not carry a user name or password"));
    }
    let Some(host) = parsed.host() else {
        return Err(format!("the {what} has no host"));
    };
    if !allow_private {
        let public = match host {
            url::Host::Ipv4(ip) => is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_public(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                !(name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".local")
                    || name.ends_with(".internal")
                    || !name.contains('.'))
            }
        };
        if !public {
            return Err(format!(
                "the {what} must name a public host, not a local or private one"
            ));
        }
    }
    Ok(parsed)
}

/// Whether an address is one anyone on the internet could reach (not loopback, private,
/// link-local, shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && second == 0x0db8)
                // NAT64 and 6to4 carry an IPv4 address inside: they could reach a private one.
                || (first == 0x0064 && second == 0xff9b)
                || first == 0x2002)
        }
    }
}

/// Resolves host names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for every call the hub makes: no redirects, and (unless private URLs are
/// allowed) https only, to public addresses only.
pub fn client(allow_private: bool, timeout: Duration) -> Result<reqwest::Client, String> {
    client_builder(allow_private, timeout)
        .build()
        .map_err(|e| e.without_url().to_string())
}

/// [`client`]'s settings, for a caller that needs one more (HTTP/2 only, for APNs).
pub fn client_builder(allow_private: bool, timeout: Duration) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the host itself, past the public-address check below.
        .no_proxy();
    if !allow_private {
        builder = builder.https_only(true).dns_resolver(Arc::new(PublicOnly));
    }
    builder
}

/// Whether a URL the hub is about to call is allowed (IP-literal hosts skip DNS, so they are
/// checked here, per call).
pub fn allowed(url: &str, allow_private: bool) -> bool {
    check_url(url, allow_private, "URL").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_on_public_hosts_are_allowed_unless_private_ones_are() {
        let ok = |u: &str| check_url(u, false, "webhook URL").is_ok();
        assert!(ok("https://webhook.botpress.cloud/0a1b"));
        assert!(ok("https://93.184.216.34/hook"));
        for bad in [
            "http://webhook.botpress.cloud/x",
            "https://localhost/x",
            "https://127.0.0.1:9/x",
            "https://10.0.0.5/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:192.168.1.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "https://[2002:a00:1::1]/x",
            "https://metadata.internal/x",
            "https://user:pw@example.com/x",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(!ok(bad), "{bad} should be refused");
        }
        assert!(check_url("http://127.0.0.1:9/hook", true, "webhook URL").is_ok());
    }

    #[test]
    fn an_error_never_repeats_the_url() {
        let err = check_url("http://webhook.example/secret-id", false, "webhook URL")
            .expect_err("refused");
        assert!(!err.contains("secret-id"), "{err}");
    }
}
