//! Where a link goes: every Redis URL native-sse takes, read by one parser
//! into one type, before anything connects.
//!
//! | URL | [`Deployment`] |
//! | --- | --- |
//! | `redis://[user:password@]host[:port][/db]` | one server |
//! | `rediss://…` | one server, over TLS |
//! | `redis+unix:///path[?db=n&user=…&pass=…]`, `unix:///path` | one server, on a Unix socket |
//! | `redis+sentinel://[user:password@]host[:port][,host[:port]…]/<master>[/<db>]` | the master of a Sentinel group |
//! | `redis+cluster://[user:password@]host:port[,host:port…]` | a Redis Cluster |
//!
//! A URL that lists several hosts is not one the `url` crate reads; those
//! are read here. A single server's URL is the redis crate's to read, and
//! is checked here the way it will read it. The reasons a URL is refused
//! ([`Unusable`]) never echo it: it may hold a password. How a deployment
//! is named in messages ([`Deployment::name`]) leaves out the userinfo and
//! the query (a Unix socket's password is there).

use redis::IntoConnectionInfo;

use crate::core::hex::percent_decode;

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// The scheme of a cluster URL.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";
/// A sentinel's port when its URL names none.
pub const SENTINEL_PORT: u16 = 26379;

/// A Redis deployment, as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// One server (TCP, TLS or a Unix socket): the URL, for the redis crate.
    Server(String),
    Sentinel(Sentinel),
    Cluster(Cluster),
}

/// The master of a Sentinel group: the sentinels to ask, the master's name,
/// and the database and credentials of the master (the sentinels are asked
/// without them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinel {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A Redis Cluster: nodes to ask for the map of its slots (`host:port`), and
/// the userinfo every node is reached with, as given (still
/// percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: Vec<String>,
    pub userinfo: Option<String>,
}

/// Why a URL cannot be used: what a user reads (it never holds the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unusable(pub &'static str);

const SCHEMES: &str =
    "it is not a redis://, rediss://, redis+unix://, redis+sentinel:// or redis+cluster:// URL";
const SENTINEL_FORM: &str =
    "a Sentinel URL is redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/<db>]";
const CLUSTER_FORM: &str =
    "a cluster URL is redis+cluster://[user:password@]host:port[,host:port…]";

impl Deployment {
    /// Reads `url`.
    pub fn parse(url: &str) -> Result<Deployment, Unusable> {
        if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) {
            return parse_sentinel(rest)
                .map(Deployment::Sentinel)
                .ok_or(Unusable(SENTINEL_FORM));
        }
        if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
            return parse_cluster(rest)
                .map(Deployment::Cluster)
                .ok_or(Unusable(CLUSTER_FORM));
        }
        let parsed = url::Url::parse(url).map_err(|err| match err {
            url::ParseError::InvalidPort => Unusable("its port must be a number from 0 to 65535"),
            url::ParseError::EmptyHost => Unusable("it names no host"),
            _ => Unusable(SCHEMES),
        })?;
        if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
            return Err(Unusable(SCHEMES));
        }
        if matches!(parsed.scheme(), "redis" | "rediss")
            && parsed.host_str().is_none_or(str::is_empty)
        {
            return Err(Unusable("it names no host"));
        }
        url.into_connection_info()
            .map_err(|_| Unusable("the redis client cannot use its database, query or fragment"))?;
        Ok(Deployment::Server(url.to_string()))
    }

    /// How it is named in messages: the URL without userinfo, query or
    /// fragment (passwords never reach a message).
    pub fn name(&self) -> String {
        match self {
            Deployment::Server(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    let _ = parsed.set_username("");
                    let _ = parsed.set_password(None);
                    parsed.set_query(None);
                    parsed.set_fragment(None);
                    parsed.to_string()
                }
                Err(_) => "(an unparsable URL)".to_string(),
            },
            Deployment::Sentinel(sentinel) => {
                let hosts: Vec<String> = sentinel
                    .sentinels
                    .iter()
                    .map(|(host, port)| format!("{host}:{port}"))
                    .collect();
                format!(
                    "{SENTINEL_SCHEME}{}/{}/{}",
                    hosts.join(","),
                    sentinel.master,
                    sentinel.db
                )
            }
            Deployment::Cluster(cluster) => {
                format!("{CLUSTER_SCHEME}{}", cluster.nodes.join(","))
            }
        }
    }
}

impl Deployment {
    /// A short tag of the deployment (8 hex digits), the same in every
    /// process that names it the same way: what tells apart, in a client's
    /// composite id, two streams of one key on two deployments (see
    /// [`crate::core::topics`]). A Sentinel group is tagged by its master's
    /// name and database (processes may list the sentinels in any order); a
    /// cluster by its nodes, sorted.
    pub fn tag(&self) -> String {
        let identity = match self {
            Deployment::Server(_) => self.name(),
            Deployment::Sentinel(sentinel) => {
                format!("sentinel/{}/{}", sentinel.master, sentinel.db)
            }
            Deployment::Cluster(cluster) => {
                let mut nodes = cluster.nodes.clone();
                nodes.sort();
                format!("cluster/{}", nodes.join(","))
            }
        };
        // FNV-1a, 32 bits: stable across builds and platforms.
        let hash = identity.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        format!("{hash:08x}")
    }
}

impl Cluster {
    /// The URL of one node, with the cluster's userinfo.
    pub fn node_url(&self, address: &str) -> String {
        match &self.userinfo {
            Some(userinfo) => format!("redis://{userinfo}@{address}"),
            None => format!("redis://{address}"),
        }
    }
}

/// `[userinfo@]hosts` and what follows, split.
fn authority(rest: &str) -> (Option<&str>, &str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts, path),
        None => (None, authority, path),
    }
}

fn parse_sentinel(rest: &str) -> Option<Sentinel> {
    let (userinfo, hosts, path) = authority(rest);
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(percent_decode(password, false)?)),
                None => (userinfo, None),
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
            Some((name, port)) if !name.is_empty() && !name.ends_with(':') => {
                Some((name.to_string(), port.parse().ok()?))
            }
            None if !host.is_empty() => Some((host.to_string(), SENTINEL_PORT)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let path = path.strip_prefix('/')?;
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
    Some(Sentinel {
        sentinels,
        master,
        db,
        username,
        password,
    })
}

fn parse_cluster(rest: &str) -> Option<Cluster> {
    let (userinfo, hosts, path) = authority(rest);
    if !matches!(path, "" | "/") {
        return None;
    }
    let nodes = hosts
        .split(',')
        .map(|host| {
            let (name, port) = host.rsplit_once(':')?;
            port.parse::<u16>().ok()?;
            (!name.is_empty()).then(|| host.to_string())
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Cluster {
        nodes,
        userinfo: userinfo.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_url_is_read_into_its_deployment() {
        assert_eq!(
            Deployment::parse("redis://ada:pw@127.0.0.1:6379/2"),
            Ok(Deployment::Server("redis://ada:pw@127.0.0.1:6379/2".into()))
        );
        assert!(matches!(
            Deployment::parse("rediss://cache.example:6380"),
            Ok(Deployment::Server(_))
        ));
        assert!(matches!(
            Deployment::parse("redis+unix:///run/redis.sock?db=1&pass=secret"),
            Ok(Deployment::Server(_))
        ));
        assert!(matches!(
            Deployment::parse("unix:///run/redis.sock"),
            Ok(Deployment::Server(_))
        ));
        assert_eq!(
            Deployment::parse(
                "redis+sentinel://ada:p%40ss@10.0.0.1:26380,s2,[::1]:5/main%20group/3"
            ),
            Ok(Deployment::Sentinel(Sentinel {
                sentinels: vec![
                    ("10.0.0.1".into(), 26380),
                    ("s2".into(), SENTINEL_PORT),
                    ("[::1]".into(), 5)
                ],
                master: "main group".into(),
                db: 3,
                username: Some("ada".into()),
                password: Some("p@ss".into()),
            }))
        );
        let Ok(Deployment::Sentinel(plain)) =
            Deployment::parse("redis+sentinel://127.0.0.1:26379/mymaster")
        else {
            panic!("a Sentinel URL");
        };
        assert_eq!((plain.db, plain.username, plain.password), (0, None, None));
        assert_eq!(
            Deployment::parse("redis+cluster://ada:pw@10.0.0.1:7000,10.0.0.2:7001"),
            Ok(Deployment::Cluster(Cluster {
                nodes: vec!["10.0.0.1:7000".into(), "10.0.0.2:7001".into()],
                userinfo: Some("ada:pw".into()),
            }))
        );
    }

    #[test]
    fn a_url_that_cannot_be_used_says_why_without_itself() {
        for (url, why) in [
            (
                "redis://127.0.0.1:99999",
                "its port must be a number from 0 to 65535",
            ),
            ("http://127.0.0.1:6379", SCHEMES),
            ("not a url with pw", SCHEMES),
            ("redis://", "it names no host"),
            ("redis+sentinel://127.0.0.1:26379", SENTINEL_FORM),
            ("redis+sentinel://127.0.0.1:26379/", SENTINEL_FORM),
            ("redis+sentinel://127.0.0.1:x/m", SENTINEL_FORM),
            ("redis+sentinel://,/m", SENTINEL_FORM),
            ("redis+sentinel://h/m/notadb", SENTINEL_FORM),
            ("redis+sentinel://h/m/0/extra", SENTINEL_FORM),
            ("redis+cluster://", CLUSTER_FORM),
            ("redis+cluster://h", CLUSTER_FORM),
            ("redis+cluster://h:x", CLUSTER_FORM),
            ("redis+cluster://h:1/db", CLUSTER_FORM),
        ] {
            assert_eq!(Deployment::parse(url), Err(Unusable(why)), "{url}");
        }
    }

    #[test]
    fn deployments_are_named_without_secrets() {
        for (url, name) in [
            (
                "redis://user:s3cret-pass@127.0.0.1:6379/0",
                "redis://127.0.0.1:6379/0",
            ),
            (
                "rediss://:pw@cache.example:6380/?protocol=resp3#insecure",
                "rediss://cache.example:6380/",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock",
            ),
            (
                "redis+sentinel://ada:secret@h1:1,h2:2/mymaster",
                "redis+sentinel://h1:1,h2:2/mymaster/0",
            ),
            (
                "redis+cluster://ada:secret@h1:1,h2:2",
                "redis+cluster://h1:1,h2:2",
            ),
        ] {
            assert_eq!(Deployment::parse(url).unwrap().name(), name);
        }
        let tag = |url| Deployment::parse(url).unwrap().tag();
        assert_eq!(
            tag("redis://ada:pw@h:1/0"),
            tag("redis://h:1/0"),
            "userinfo aside"
        );
        assert_ne!(tag("redis://h:1/0"), tag("redis://h:1/1"));
        assert_eq!(
            tag("redis+sentinel://a:1,b:2/m"),
            tag("redis+sentinel://b:2,a:1/m")
        );
        assert_eq!(tag("redis://h:1").len(), 8);
        let Ok(Deployment::Cluster(cluster)) = Deployment::parse("redis+cluster://ada:pw@h:1")
        else {
            panic!("a cluster URL");
        };
        assert_eq!(cluster.node_url("h:2"), "redis://ada:pw@h:2");
    }
}
