//! A connection's way from an open socket to `Ready`: ApiVersions (the versions both sides
//! speak), then, with SASL, SaslHandshake and the mechanism's SaslAuthenticate messages; and
//! re-authentication before the broker's session ends (KIP-368).
// Without feature `sasl` the exchange is never started (see `Authentication::is_on`).
#![cfg_attr(not(feature = "sasl"), allow(dead_code))]

use super::authentication::AuthStep;
use super::connections::{ConnState, RequestKind, TxnVersions, Versions};
use super::Producer;
use crate::error::ConnError;
use crate::protocol::api_versions::ApiVersionsResponse;
use crate::protocol::header::ApiKey;
use crate::protocol::sasl::{SaslAuthenticateResponse, SaslHandshakeResponse};
use crate::protocol::{DecodeError, ErrorCode};
use crate::time::{Duration, Instant};

/// The transaction APIs' versions, up to those of KIP-890 part 2 (EndTxn v5, TxnOffsetCommit
/// v5), which are used only when the cluster's `transaction.version` is 2 (see
/// `Transactions::implicit_add`). AddPartitionsToTxn v4+ is for brokers only.
fn txn_versions(resp: &ApiVersionsResponse<'_>) -> TxnVersions {
    let v = |key, min, max| resp.negotiate(key, min, max).unwrap_or(-1);
    TxnVersions {
        find_coordinator: v(ApiKey::FindCoordinator, 1, 5),
        add_partitions: v(ApiKey::AddPartitionsToTxn, 0, 3),
        add_offsets: v(ApiKey::AddOffsetsToTxn, 0, 3),
        txn_offset_commit: v(ApiKey::TxnOffsetCommit, 0, 5),
        end_txn: v(ApiKey::EndTxn, 0, 5),
        // A features tag that does not parse: the classic protocol, which every broker with
        // transactions serves, rather than no connection at all.
        transaction_version: resp.feature_level("transaction.version").unwrap_or(0),
    }
}

impl Producer<'_> {
    pub(super) fn on_api_versions(
        &mut self,
        now: Instant,
        i: usize,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = ApiVersionsResponse::decode(body, version)?;
        let c = &mut self.conns[i];
        if resp.error_code == ErrorCode::UnsupportedVersion {
            // Ask again at the highest version the broker lists (KIP-511), as the Java client does.
            let theirs = resp.range(ApiKey::ApiVersions).map_or(0, |r| r.max_version);
            if theirs < version {
                c.api_versions_version = theirs.max(0);
                return Ok(());
            }
        }
        let produce = resp.negotiate(ApiKey::Produce, 3, 12);
        let metadata = resp.negotiate(ApiKey::Metadata, 1, 12);
        let init = resp.negotiate(ApiKey::InitProducerId, 0, 5);
        // Only a successful answer says what the broker lacks: an error (UNSUPPORTED_VERSION
        // with KIP-511's list of ApiVersions alone, INVALID_REQUEST with none) closes the
        // connection below and the next one asks again, with SASL as without.
        let sasl = if self.auth.is_on() && resp.error_code == ErrorCode::NoError {
            match (
                resp.negotiate(ApiKey::SaslHandshake, 1, 1),
                resp.negotiate(ApiKey::SaslAuthenticate, 0, 2),
            ) {
                (Some(_), Some(v)) => Some(v),
                _ => {
                    warn!("{}:{} lacks SaslHandshake v1 / SaslAuthenticate", c.host.as_str(), c.port);
                    self.auth.fail_unsupported();
                    self.auth_failed(ErrorCode::UnsupportedVersion);
                    return Ok(());
                }
            }
        } else {
            None
        };
        let idempotent = self.idempotence.is_on();
        match (resp.error_code, produce, metadata, init) {
            (ErrorCode::NoError, Some(produce), Some(metadata), init) if init.is_some() || !idempotent => {
                c.versions = Versions {
                    produce,
                    metadata,
                    init_producer_id: init.unwrap_or(0),
                    sasl_authenticate: sasl.unwrap_or(0),
                    txn: if self.txn.is_on() { txn_versions(&resp) } else { TxnVersions::NONE },
                };
                if sasl.is_some() {
                    c.state = ConnState::Authenticating;
                } else {
                    c.state = ConnState::Ready;
                    c.failures = 0;
                }
                debug!(
                    "{}:{} versions: Produce v{}, Metadata v{}",
                    c.host.as_str(),
                    c.port,
                    produce,
                    metadata
                );
            }
            _ => {
                warn!("{}:{} lacks the API versions a producer needs", c.host.as_str(), c.port);
                self.close_conn(now, i, ConnError::UnsupportedBroker);
            }
        }
        Ok(())
    }

    /// The next request of connection `i`'s SASL exchange, once it is this connection's turn;
    /// also starts a re-authentication of a ready connection whose requests are all answered.
    pub(super) fn next_auth_request(&mut self, now: Instant, i: usize) -> Option<(RequestKind, i16)> {
        let c = &self.conns[i];
        let reauth = c.state == ConnState::Ready;
        if reauth {
            // KIP-368: no new requests once the time has come; re-authenticate once the
            // connection is quiet, so no answer is lost.
            if c.reauth_at.is_none_or(|at| now < at) || !c.in_flight.is_empty() || c.tx.is_some() {
                return None;
            }
        } else if c.state != ConnState::Authenticating || !c.in_flight.is_empty() {
            return None;
        }
        let kind = self.auth.next_request(i, c.generation, reauth, self.config.sasl.unsecure_jwt)?;
        let c = &mut self.conns[i];
        c.state = ConnState::Authenticating;
        c.reauth_at = None;
        let version = match kind {
            RequestKind::SaslHandshake => 1,
            _ => c.versions.sasl_authenticate,
        };
        Some((kind, version))
    }

    pub(super) fn on_sasl_handshake(
        &mut self,
        now: Instant,
        i: usize,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = SaslHandshakeResponse::decode(body, version)?;
        let unix_s = (self.unix_offset_ms + now.as_millis() as i64) / 1000;
        #[cfg(feature = "sasl")]
        let step = {
            let mut fill = self.csprng.as_deref_mut().map(|r| move |buf: &mut [u8]| r.fill_bytes(buf));
            let rng = fill.as_mut().map(|f| f as super::authentication::FillRandom<'_>);
            self.auth.on_handshake(
                &self.config.sasl,
                resp.error_code,
                resp.mechanisms.iter(),
                rng,
                now,
                unix_s,
            )
        };
        #[cfg(not(feature = "sasl"))]
        let step = self.auth.on_handshake(
            &self.config.sasl,
            resp.error_code,
            resp.mechanisms.iter(),
            None,
            now,
            unix_s,
        );
        self.on_auth_step(now, i, step);
        Ok(())
    }

    pub(super) fn on_sasl_authenticate(
        &mut self,
        now: Instant,
        i: usize,
        body: &[u8],
        version: i16,
    ) -> Result<(), DecodeError> {
        let resp = SaslAuthenticateResponse::decode(body, version)?;
        let step = self.auth.on_authenticate(
            &self.config.sasl,
            resp.error_code,
            resp.error_message,
            resp.auth_bytes,
            resp.session_lifetime_ms,
        );
        self.on_auth_step(now, i, step);
        Ok(())
    }

    fn on_auth_step(&mut self, now: Instant, i: usize, step: AuthStep) {
        match step {
            AuthStep::Continue => {}
            AuthStep::Done { lifetime_ms, reauthenticated } => {
                if reauthenticated {
                    self.metrics.reauthentications += 1;
                } else {
                    self.metrics.authentications += 1;
                }
                let c = &mut self.conns[i];
                c.state = ConnState::Ready;
                c.failures = 0;
                // Re-authenticate at 85 to 95 % of the session, as the Java client does.
                c.reauth_at = (lifetime_ms > 0).then(|| {
                    let share = 850 + u64::from(self.rng.below(101));
                    now + Duration::from_millis(lifetime_ms as u64 * share / 1000)
                });
                debug!("{}:{} authenticated ({})", c.host.as_str(), c.port, self.auth.mechanism_name());
            }
            AuthStep::Retry(code) => {
                self.note_broker_error(code);
                self.auth.release(i);
                self.close_conn(now, i, ConnError::Disconnected);
            }
            AuthStep::Fatal(code) => {
                self.close_conn(now, i, ConnError::Disconnected);
                self.auth_failed(code);
            }
        }
    }

    /// Authentication failed for good: every record fails, `send` refuses, and no connection
    /// tries again (a wrong password does not improve with retries; it fills the broker's log).
    fn auth_failed(&mut self, code: ErrorCode) {
        if let Some(e) = self.auth.error(&self.config.sasl) {
            error!(
                "SASL {} authentication as {} failed: {:?} {}",
                e.mechanism.name(),
                e.username,
                e.failure,
                e.broker_message
            );
        }
        self.note_broker_error(code);
        self.set_fatal(code);
        self.conns.close_all();
    }
}
