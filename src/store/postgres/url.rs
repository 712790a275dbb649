//! The store's URL: `postgresql://[user[:password]@]host[:port]/dbname[?param=value&...]`.
//! jobq takes one parameter of its own, `schema` (default `jobq`); every
//! other one goes to the connection as libpq would read it (tokio-postgres
//! parses the same URL syntax and keys).

use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// The schema of a URL without `schema=`.
pub(crate) const DEFAULT_SCHEMA: &str = "jobq";
/// Connect timeout when the URL gives none (libpq would wait forever).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;

/// A parsed store URL.
#[derive(Debug, Clone)]
pub(crate) struct StoreUrl {
    /// The connection settings (everything but `schema`).
    pub pg: tokio_postgres::Config,
    /// The schema holding the store's tables, unquoted.
    pub schema: String,
    /// `host:port` for messages (no password).
    pub target: String,
}

pub(crate) fn parse(url: &str) -> Result<StoreUrl> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "schema" {
            if schema.is_some() {
                return Err(Error::invalid("PostgreSQL URL: parameter schema given twice"));
            }
            schema = Some(percent_decode(value)?);
        } else {
            rest.push(pair);
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
    check_schema(&schema)?;
    let conn_url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    let mut pg =
        tokio_postgres::Config::from_str(&conn_url).map_err(|e| Error::invalid(format!("PostgreSQL URL: {e}")))?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("jobq");
    }
    let target = target_of(&pg);
    Ok(StoreUrl { pg, schema, target })
}

fn check_schema(schema: &str) -> Result<()> {
    if schema.is_empty() {
        return Err(Error::invalid("PostgreSQL URL: schema is empty"));
    }
    if schema.len() > MAX_IDENT {
        return Err(Error::invalid(format!("PostgreSQL URL: schema longer than {MAX_IDENT} bytes")));
    }
    if schema.contains('\0') {
        return Err(Error::invalid("PostgreSQL URL: schema holds a NUL byte"));
    }
    Ok(())
}

/// `host:port[,host:port...]` of the settings, for error messages.
fn target_of(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    }
}

/// Decodes `%XX` escapes (and `+` as a space, as in a query string).
fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::invalid("PostgreSQL URL: bad %-escape in schema"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("PostgreSQL URL: schema is not UTF-8"))
}

/// `schema` as a quoted SQL identifier.
pub(crate) fn quote_ident(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_split_off_and_the_rest_kept() {
        let u = parse("postgresql://u:pw@db.example:6543/app?schema=my%20q&application_name=x").unwrap();
        assert_eq!(u.schema, "my q");
        assert_eq!(u.pg.get_dbname(), Some("app"));
        assert_eq!(u.pg.get_application_name(), Some("x"));
        assert_eq!(u.target, "db.example:6543");
        assert_eq!(u.pg.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        let u = parse("postgres://localhost/app?connect_timeout=3").unwrap();
        assert_eq!(u.schema, "jobq");
        assert_eq!(u.pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }

    #[test]
    fn bad_urls_are_invalid_args() {
        for bad in [
            "postgresql://h/db?schema=",
            "postgresql://h/db?schema=a&schema=b",
            "postgresql://h/db?no_such_param=1",
            "postgresql://h/db?schema=%zz",
            "postgresql://h:notaport/db",
        ] {
            assert!(matches!(parse(bad), Err(Error::InvalidArg(_))), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
