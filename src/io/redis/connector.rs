//! Opening connections to a Redis deployment: one server named by its URL,
//! or the master of a Sentinel-monitored group, found anew through the
//! sentinels at every connect so that a failover is followed.
//!
//! # Sentinel
//!
//! `redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/<db>]`
//! lists the sentinels (port 26379 if left out) and names the master; the
//! userinfo and the database are the master's (the sentinels are asked
//! without a password). Each connect asks the sentinels for the master's
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

use super::CONNECT_TIMEOUT;
use crate::core::hex::percent_decode;

/// The scheme of a Sentinel URL.
const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// A sentinel's port when its URL names none.
const SENTINEL_PORT: u16 = 26379;

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

/// A Sentinel URL, read.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    sentinels: Vec<(String, u16)>,
    master: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

impl Connector {
    /// A connector for `url`; fails for a URL or TLS material that cannot
    /// be used (nothing is connected yet).
    pub fn new(url: &str, tls: Option<Tls>) -> RedisResult<Self> {
        // rustls needs a process-wide crypto provider; another addon may
        // have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if url.starts_with(SENTINEL_SCHEME) {
            if tls.is_some() {
                return Err(invalid("TLS is not supported with Sentinel yet"));
            }
            return Ok(Connector {
                target: Target::Sentinel(Arc::new(Mutex::new(sentinel_client(url)?))),
            });
        }
        let client = match tls {
            None => redis::Client::open(url),
            Some(tls) => {
                let client_tls = match (tls.cert, tls.key) {
                    (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }),
                    _ => None,
                };
                redis::Client::build_with_tls(
                    url,
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

fn sentinel_client(url: &str) -> RedisResult<SentinelClient> {
    let parsed = parse_sentinel_url(url).ok_or_else(|| {
        invalid("a Sentinel URL is redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/<db>]")
    })?;
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
        parsed.master,
        Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(info)),
        SentinelServerType::Master,
    )
}

/// Reads a Sentinel URL; `None` if it is not one.
fn parse_sentinel_url(url: &str) -> Option<SentinelUrl> {
    let rest = url.strip_prefix(SENTINEL_SCHEME)?;
    let (authority, path) = rest.split_once('/')?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let password = match password {
                Some(password) => Some(percent_decode(password, false)?),
                None => None,
            };
            (
                Some(percent_decode(user, false)?).filter(|u| !u.is_empty()),
                password,
            )
        }
    };
    let sentinels = hosts
        .split(',')
        .map(|host| match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() => Some((name.to_string(), port.parse().ok()?)),
            None if !host.is_empty() => Some((host.to_string(), SENTINEL_PORT)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.split('/');
    let master = percent_decode(segments.next()?, false)?;
    let db = match segments.next() {
        None | Some("") => 0,
        Some(db) => db.parse().ok()?,
    };
    if master.is_empty() || segments.next().is_some() {
        return None;
    }
    Some(SentinelUrl {
        sentinels,
        master,
        db,
        username,
        password,
    })
}

/// The URL without its userinfo, query or fragment: how the server is named
/// in every message.
pub fn server_name(url: &str) -> String {
    if let Some((nodes, _)) = super::cluster::parse_cluster_url(url) {
        return format!("{}{}", super::cluster::CLUSTER_SCHEME, nodes.join(","));
    }
    if let Some(parsed) = parse_sentinel_url(url) {
        let hosts: Vec<String> = parsed
            .sentinels
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        return format!(
            "{SENTINEL_SCHEME}{}/{}/{}",
            hosts.join(","),
            parsed.master,
            parsed.db
        );
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_and_its_credentials() {
        assert_eq!(
            parse_sentinel_url(
                "redis+sentinel://ada:p%40ss@10.0.0.1:26380,s2,[::1]:5/main%20group/3"
            ),
            Some(SentinelUrl {
                sentinels: vec![
                    ("10.0.0.1".into(), 26380),
                    ("s2".into(), SENTINEL_PORT),
                    ("[::1]".into(), 5)
                ],
                master: "main group".into(),
                db: 3,
                username: Some("ada".into()),
                password: Some("p@ss".into()),
            })
        );
        let plain = parse_sentinel_url("redis+sentinel://127.0.0.1:26379/mymaster").unwrap();
        assert_eq!((plain.db, plain.username, plain.password), (0, None, None));
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel://127.0.0.1:x/m",
            "redis+sentinel://,/m",
            "redis+sentinel://h/m/notadb",
            "redis+sentinel://h/m/0/extra",
        ] {
            assert_eq!(parse_sentinel_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn servers_are_named_without_passwords() {
        assert_eq!(
            server_name("redis+sentinel://ada:secret@h1:1,h2:2/mymaster"),
            "redis+sentinel://h1:1,h2:2/mymaster/0"
        );
        assert_eq!(
            server_name("redis+cluster://ada:secret@h1:1,h2:2"),
            "redis+cluster://h1:1,h2:2"
        );
        assert_eq!(
            server_name("redis://ada:secret@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
