//! Opening connections to a Redis deployment: one server named by its URL,
//! or the master of a Sentinel-monitored group, found anew through the
//! sentinels at every connect so that a failover is followed.
//!
//! # Sentinel
//!
//! A Sentinel URL ([`super::deployment`]) lists the sentinels and names the
//! master; the userinfo and the database are the master's (the sentinels
//! are asked without a password). Each connect asks the sentinels for the master's
//! address and checks that the server there says it is a master (`ROLE`),
//! so a connection is never opened to a demoted master. A sentinel that
//! reconfigures a demoted master kills its clients, so every connection
//! of the link breaks at a failover, and reconnects to the new master.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ErrorKind, RedisConnectionInfo, RedisError, RedisResult,
};
use tokio::sync::Mutex;

use super::deployment::{Deployment, Sentinel};
use super::CONNECT_TIMEOUT;

/// TLS material for `rediss://`, in PEM.
#[derive(Default)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

/// Opens connections to one deployment.
#[derive(Clone)]
pub struct Connector {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Server(Box<redis::Client>),
    /// Asked for the master at every connect (one question at a time).
    Sentinel(Arc<Mutex<SentinelClient>>),
}

impl Connector {
    /// A connector for one server or a Sentinel group; fails for TLS
    /// material that cannot be used, or a cluster (it is reached through
    /// its masters: see [`super::cluster`]). Nothing is connected yet.
    pub fn new(deployment: &Deployment, tls: Option<Tls>) -> RedisResult<Self> {
        // rustls needs a process-wide crypto provider; another addon may
        // have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = match deployment {
            Deployment::Server(url) => url,
            Deployment::Sentinel(sentinel) => {
                if tls.is_some() {
                    return Err(invalid("TLS is not supported with Sentinel yet"));
                }
                return Ok(Connector {
                    target: Target::Sentinel(Arc::new(Mutex::new(sentinel_client(sentinel)?))),
                });
            }
            Deployment::Cluster(_) => {
                return Err(invalid("a cluster is reached through a link per master"))
            }
        };
        let client = match tls {
            None => redis::Client::open(url.as_str()),
            Some(tls) => {
                let client_tls = match (tls.cert, tls.key) {
                    (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }),
                    _ => None,
                };
                redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls,
                        root_cert: tls.ca,
                    },
                )
            }
        }?;
        Ok(Connector {
            target: Target::Server(Box::new(client)),
        })
    }

    /// The client of the server to connect to now: for Sentinel, the
    /// master the sentinels name, within [`CONNECT_TIMEOUT`].
    async fn client(&self) -> RedisResult<redis::Client> {
        match &self.target {
            Target::Server(client) => Ok((**client).clone()),
            Target::Sentinel(sentinel) => {
                let ask = async { sentinel.lock().await.async_get_client().await };
                tokio::time::timeout(CONNECT_TIMEOUT, ask)
                    .await
                    .unwrap_or_else(|_| {
                        Err(RedisError::from((
                            ErrorKind::Io,
                            "no sentinel named the master in time",
                        )))
                    })
            }
        }
    }

    pub(super) async fn connect(
        &self,
        reply_timeout: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        Ok(self.connect_at(reply_timeout).await?.0)
    }

    /// A connection, and how the server it went to is reached (for
    /// Sentinel, the master named at this connect): a connection's client id
    /// means something only on the server it belongs to.
    pub(super) async fn connect_at(
        &self,
        reply_timeout: Duration,
    ) -> RedisResult<(MultiplexedConnection, ConnectionInfo)> {
        let client = self.client().await?;
        let info = client.get_connection_info().clone();
        let connection = client
            .get_multiplexed_async_connection_with_config(&config_for(reply_timeout))
            .await?;
        Ok((connection, info))
    }

    /// A connection to the server `info` names, whatever the deployment
    /// says now (the master a failover left behind).
    pub(super) async fn connect_to(
        info: &ConnectionInfo,
        reply_timeout: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        redis::Client::open(info.clone())?
            .get_multiplexed_async_connection_with_config(&config_for(reply_timeout))
            .await
    }

    /// A RESP3 connection whose pushes (pub/sub messages, confirmations,
    /// its end) go to `pushes` (see [`super::notices`]).
    pub(super) async fn resp3_with_pushes(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> RedisResult<MultiplexedConnection> {
        let client = self.client().await?;
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        redis::Client::open(info.set_redis_settings(settings))?
            .get_multiplexed_async_connection_with_config(
                &config_for(super::REPLY_TIMEOUT).set_push_sender(pushes),
            )
            .await
    }

    /// A pub/sub connection (the caller bounds how long it may take).
    pub(super) async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        self.client().await?.get_async_pubsub().await
    }
}

fn config_for(reply_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(reply_timeout))
}

/// A setting that cannot be used; `detail` is what a user reads.
fn invalid(detail: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "unusable Sentinel settings",
        detail.to_string(),
    ))
}

fn sentinel_client(parsed: &Sentinel) -> RedisResult<SentinelClient> {
    let mut info = RedisConnectionInfo::default().set_db(parsed.db);
    if let Some(username) = &parsed.username {
        info = info.set_username(username);
    }
    if let Some(password) = &parsed.password {
        info = info.set_password(password);
    }
    let sentinels: Vec<String> = parsed
        .sentinels
        .iter()
        .map(|(host, port)| format!("redis://{host}:{port}/"))
        .collect();
    SentinelClient::build(
        sentinels,
        parsed.master.clone(),
        Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(info)),
        SentinelServerType::Master,
    )
}
