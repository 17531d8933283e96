//! File-system-safe names for topics and cursors.
//!
//! A topic's directory is named after its canonical string (`Topic::to_string()`, `name` or
//! `tenant~name`) with every byte outside `[A-Za-z0-9_-]` written as `%XX` (upper-case hex), so
//! `acme~orders/created` becomes `acme%7Eorders%2Fcreated`; [`decode`] reverses it and
//! `Topic::parse` reads the result. No encoded name starts with `.`, contains `/` or is `.`/`..`.
//! An encoded name longer than [`MAX_PLAIN`] bytes (file systems allow 255) is cut to a prefix
//! followed by `~` and 16 hex digits of a 64-bit FNV-1a hash of the full string; such names are
//! not reversible, so the full string is also kept inside the directory (the topic's `TOPIC`
//! file, a cursor's snapshot), which is the authority.

use eventmesh_storage::names::NameEscape;

/// Encoded names up to this length are used as they are.
pub(crate) const MAX_PLAIN: usize = 200;

/// The escaping of names: `%XX` for every byte outside `[A-Za-z0-9_-]`.
const ESCAPE: NameEscape = NameEscape::new(b'%', b"_-");

/// Percent-encodes `s` (see the module docs).
pub(crate) fn encode(s: &str) -> String {
    ESCAPE.encode(s)
}

/// Reverses [`encode`]; `None` for a string [`encode`] cannot have produced.
pub(crate) fn decode(s: &str) -> Option<String> {
    ESCAPE.decode(s)
}

/// A stable 64-bit FNV-1a hash.
pub(crate) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The file-system-safe name of `s`: [`encode`]d, or cut and hashed when too long.
pub(crate) fn safe_name(s: &str) -> String {
    let enc = encode(s);
    if enc.len() <= MAX_PLAIN {
        return enc;
    }
    hashed(&enc, s)
}

/// `<prefix>.<a>.<b>` with both parts encoded (`.` is always encoded inside a part), or
/// `<prefix>.` followed by the cut-and-hashed form of both when too long.
pub(crate) fn safe_name_pair(prefix: &str, a: &str, b: &str) -> String {
    let plain = format!("{prefix}.{}.{}", encode(a), encode(b));
    if plain.len() <= MAX_PLAIN {
        return plain;
    }
    let joined = format!("{a}\u{0}{b}");
    format!("{prefix}.{}", hashed(&encode(&joined), &joined))
}

fn hashed(enc: &str, s: &str) -> String {
    // Cut at the last escape boundary that leaves room for `~` and the hash.
    let limit = MAX_PLAIN - 17;
    let bytes = enc.as_bytes();
    let mut cut = 0;
    while cut < bytes.len() {
        let step = if bytes[cut] == b'%' { 3 } else { 1 };
        if cut + step > limit {
            break;
        }
        cut += step;
    }
    format!("{}~{:016x}", &enc[..cut], fnv1a(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::Topic;

    #[test]
    fn topic_names_round_trip() {
        for t in [
            "orders",
            "acme~orders/created",
            "a.b",
            "..",
            "ünï/cødé",
            "100%",
        ] {
            let topic = Topic::parse(t).unwrap();
            let name = safe_name(&topic.to_string());
            assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
            assert_eq!(Topic::parse(&decode(&name).unwrap()).unwrap(), topic);
        }
        assert_eq!(encode("acme~orders/created"), "acme%7Eorders%2Fcreated");
    }

    #[test]
    fn long_names_are_cut_and_hashed() {
        let long = "/".repeat(255);
        let name = safe_name(&long);
        assert!(name.len() <= MAX_PLAIN, "{}", name.len());
        assert!(name.contains('~'));
        assert!(decode(&name).is_none());
        assert_ne!(safe_name(&"/".repeat(254)), name);
        let name2 = safe_name(&format!("{}x", "é".repeat(120)));
        assert!(name2.len() <= MAX_PLAIN);
        let pair = safe_name_pair("b", "g", &"m".repeat(300));
        assert!(
            pair.len() <= MAX_PLAIN + 2 && pair.starts_with("b."),
            "{pair}"
        );
        assert_ne!(pair, safe_name_pair("b", "g", &"m".repeat(301)));
        assert_eq!(
            safe_name_pair("b", "g.1", "http://x"),
            "b.g%2E1.http%3A%2F%2Fx"
        );
    }

    #[test]
    fn decode_refuses_garbage() {
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("a/b"), None);
        assert_eq!(decode("%4"), None);
    }
}
