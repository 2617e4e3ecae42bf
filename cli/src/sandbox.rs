//! `byosms sandbox`: the stand-in of every registered provider on one port, each under
//! `/{provider}` (`/twilio/2010-04-01/...`), so that the bundle can be tried end to end without
//! an account or a network. What each stand-in checks and answers is its provider's business
//! (`shared/src/providers/<provider>/stand_in.rs`).

use byosms::config::api_url_variables;
use byosms::domain::Provider;
use byosms::providers::ProviderAdapter;
use std::net::SocketAddr;

/// Where `provider`'s stand-in is mounted on the sandbox's router.
pub fn mount_path(provider: Provider) -> String {
    format!("/{}", provider.as_str())
}

/// The stand-ins of `adapters`, each under its [`mount_path`].
pub fn router<'a>(adapters: impl IntoIterator<Item = &'a dyn ProviderAdapter>) -> axum::Router {
    adapters
        .into_iter()
        .fold(axum::Router::new(), |router, adapter| {
            router.nest(&mount_path(adapter.provider()), adapter.stand_in().router)
        })
}

/// The base URL of `provider`'s stand-in on a sandbox at `addr`.
pub fn base_url(addr: SocketAddr, provider: Provider) -> String {
    format!("http://{addr}{}", mount_path(provider))
}

/// The shell lines that send `provider`'s API calls to its stand-in on a sandbox at `addr`.
pub fn export_lines(addr: SocketAddr, provider: Provider) -> Vec<String> {
    api_url_variables(provider)
        .into_iter()
        .map(|name| format!("export {name}={}", base_url(addr, provider)))
        .collect()
}

pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
