//! Parsing `bootstrap.servers`: `host:port` entries separated by commas (ASCII whitespace
//! around them ignored, as Java's `trim` does; Unicode's table would cost firmware 0.3 KB).
//! IPv6 literals go in brackets: `[::1]:9092`. A listener scheme in front (`PLAINTEXT://`,
//! `SSL://`, `SASL_PLAINTEXT://`, `SASL_SSL://`, any case) is skipped, as the Java client skips
//! it: `security.protocol` decides how to connect.

/// A bootstrap entry that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAddress;

/// The `(host, port)` pairs of a bootstrap list.
pub fn parse(list: &str) -> impl Iterator<Item = Result<(&str, u16), BadAddress>> {
    list.split(',').map(str::trim_ascii).filter(|s| !s.is_empty()).map(parse_one)
}

/// The schemes Kafka's listeners are named by.
const SCHEMES: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn parse_one(entry: &str) -> Result<(&str, u16), BadAddress> {
    // A byte scan, not `split_once("://")`: the substring searcher costs firmware ~1 KiB.
    let entry = match entry.as_bytes().windows(3).position(|w| w == b"://") {
        Some(at) if SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(&entry[..at])) => &entry[at + 3..],
        Some(_) => return Err(BadAddress),
        None => entry,
    };
    let (host, port) = entry.rsplit_once(':').ok_or(BadAddress)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| BadAddress)?;
    if host.is_empty() || port == 0 || host.len() > super::connections::HOST_MAX {
        return Err(BadAddress);
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let v: std::vec::Vec<_> = parse(" a:1, b.example:9092,[::1]:7 ,").collect();
        assert_eq!(v, [Ok(("a", 1)), Ok(("b.example", 9092)), Ok(("::1", 7))]);
        assert_eq!(parse("a").next(), Some(Err(BadAddress)));
        assert_eq!(parse("a:0").next(), Some(Err(BadAddress)));
        assert_eq!(parse(":9").next(), Some(Err(BadAddress)));
        let v: std::vec::Vec<_> = parse("PLAINTEXT://a:1,sasl_ssl://[::1]:2").collect();
        assert_eq!(v, [Ok(("a", 1)), Ok(("::1", 2))]);
        assert_eq!(parse("http://a:1").next(), Some(Err(BadAddress)));
    }
}
