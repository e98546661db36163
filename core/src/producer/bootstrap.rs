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
    // `str::split(',')` by hand (with `parse_one`'s scans: 704 B less firmware flash).
    let mut rest = Some(list);
    let entries = core::iter::from_fn(move || {
        let entry = rest?;
        let comma = entry.bytes().position(|b| b == b',');
        rest = comma.and_then(|at| entry.get(at + 1..));
        comma.map_or(Some(entry), |at| entry.get(..at))
    });
    entries.map(str::trim_ascii).filter(|s| !s.is_empty()).map(parse_one)
}

/// The schemes Kafka's listeners are named by.
const SCHEMES: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn parse_one(entry: &str) -> Result<(&str, u16), BadAddress> {
    // Byte scans and `str::get`, not `split_once("://")` (the substring searcher, ~1 KiB),
    // `rsplit_once(':')` and `&entry[..]` (with `parse`'s split: 704 B of firmware flash).
    // The bytes found are ASCII, so every `get` succeeds.
    let bytes = entry.as_bytes();
    let entry = match bytes.windows(3).position(|w| w == b"://") {
        Some(at) if SCHEMES.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(&bytes[..at])) => {
            entry.get(at + 3..).ok_or(BadAddress)?
        }
        Some(_) => return Err(BadAddress),
        None => entry,
    };
    let colon = entry.bytes().rposition(|b| b == b':').ok_or(BadAddress)?;
    let (host, port) = (entry.get(..colon).ok_or(BadAddress)?, &entry.as_bytes()[colon + 1..]);
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = parse_port(port).ok_or(BadAddress)?;
    if host.is_empty() || port == 0 || host.len() > super::connections::HOST_MAX {
        return Err(BadAddress);
    }
    Ok((host, port))
}

/// A port as `u16::from_str` reads it: decimal digits, a `+` in front allowed (`str::parse`
/// links core's integer parser).
fn parse_port(digits: &[u8]) -> Option<u16> {
    let digits = match digits {
        [b'+', rest @ ..] if !rest.is_empty() => rest,
        _ => digits,
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |port, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        port.checked_mul(10)?.checked_add(u16::from(d - b'0'))
    })
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

    /// The parser as it was written with `str`'s searchers, `str::parse` and indexing.
    fn reference(list: &str) -> std::vec::Vec<Result<(&str, u16), BadAddress>> {
        let one = |entry: &'static str| -> Result<(&'static str, u16), BadAddress> {
            let entry = match entry.split_once("://") {
                Some((scheme, rest)) if SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) => rest,
                Some(_) => return Err(BadAddress),
                None => entry,
            };
            let (host, port) = entry.rsplit_once(':').ok_or(BadAddress)?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            let port: u16 = port.parse().map_err(|_| BadAddress)?;
            if host.is_empty() || port == 0 || host.len() > crate::producer::connections::HOST_MAX {
                return Err(BadAddress);
            }
            Ok((host, port))
        };
        let list: &'static str = std::boxed::Box::leak(list.into());
        list.split(',').map(str::trim_ascii).filter(|s| !s.is_empty()).map(one).collect()
    }

    #[test]
    fn the_same_as_str_parsing() {
        let named = [
            "a:65535",
            "a:65536",
            "a:+1",
            "a:+",
            "a:-1",
            "a:",
            "a:1x",
            "a:00009092",
            "é:1,ß:2",
            "PLAINTEXT://é:1",
            "é://a:1",
            "ssl://[::1]:9",
            "SSL:///a:1",
            "a://b://c:1",
            ",,",
            " , ",
            "a:1,,b:2",
            "[a]:1",
            "[]:1",
            "[a:1",
            "a::1",
            ":1:2",
            "SASL_SSL://",
            "x:1\t, \ty:2 ",
        ];
        for list in named {
            assert_eq!(parse(list).collect::<std::vec::Vec<_>>(), reference(list), "{list:?}");
        }
        // Every list of up to 6 of these characters.
        fn walk(s: &mut std::string::String, depth: usize) {
            assert_eq!(parse(s).collect::<std::vec::Vec<_>>(), reference(s), "{s:?}");
            if depth > 0 {
                for c in ['a', '1', '0', ':', ',', '+', '[', ']', '/', ' ', '\u{e9}'] {
                    s.push(c);
                    walk(s, depth - 1);
                    s.pop();
                }
            }
        }
        walk(&mut std::string::String::new(), 6);
        for port in 0..=70_000u32 {
            for text in [std::format!("{port}"), std::format!("+{port}"), std::format!("0{port}")] {
                assert_eq!(parse_port(text.as_bytes()), text.parse().ok(), "{text:?}");
            }
        }
    }
}
