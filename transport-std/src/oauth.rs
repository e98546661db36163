//! OAUTHBEARER tokens from the application, on the producer's schedule: librdkafka's
//! `oauthbearer_token_refresh_cb`. The callback is asked for a token when the producer starts and
//! again at 80 % of each token's lifetime; a failure is reported (`health()`, and the errors of
//! records that cannot authenticate) and asked again 10 s later.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::driver::Cmd;

/// A token from the application's identity provider.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthBearerToken {
    /// The token as the broker's validator reads it (a JWT, most often).
    pub value: String,
    /// How long it stays valid from now: the next one is asked for at 80 % of it.
    pub lifetime: Duration,
}

/// A token's value is a credential: never shown.
impl std::fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The application's token source: given `sasl.oauthbearer.config`, a token or why not.
pub(crate) type TokenRefresh = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<OAuthBearerToken, String>> + Send>> + Send + Sync,
>;

/// How long after a failed refresh it is tried again (librdkafka's 10 s).
const RETRY: Duration = Duration::from_secs(10);
/// The soonest a token is refreshed again, whatever its lifetime says.
const MIN_REFRESH: Duration = Duration::from_millis(500);

/// Keeps the producer supplied with tokens until it is gone (the weak sender stops working
/// once every handle and the task are).
pub(crate) async fn refresh(cmd: mpsc::WeakUnboundedSender<Cmd>, config: String, source: TokenRefresh) {
    loop {
        let result = source(config.clone()).await;
        let Some(cmd) = cmd.upgrade() else { return };
        let wait = match result {
            Ok(token) => {
                let (tx, rx) = oneshot::channel();
                let lifetime = token.lifetime;
                if cmd.send(Cmd::OAuthToken(token.value, tx)).is_err() {
                    return;
                }
                match rx.await {
                    Ok(Ok(())) => lifetime.mul_f64(0.8).max(MIN_REFRESH),
                    Ok(Err(e)) => {
                        let _ = cmd.send(Cmd::OAuthTokenFailure(e.to_string()));
                        RETRY
                    }
                    Err(_) => return,
                }
            }
            Err(why) => {
                warn!("OAUTHBEARER token refresh failed: {why}");
                if cmd.send(Cmd::OAuthTokenFailure(why)).is_err() {
                    return;
                }
                RETRY
            }
        };
        drop(cmd);
        tokio::time::sleep(wait).await;
    }
}
