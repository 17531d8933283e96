//! Building blocks for the names stores give their objects on disk or in a broker.
//!
//! Mesh topics and groups may hold almost any character, while file systems and brokers allow
//! only a few. [`NameEscape`] is the one reversible escaping every store uses: ASCII letters and
//! digits and the store's extra allowed bytes stay as they are, and every other byte of the UTF-8
//! form (the escape byte itself included) becomes the escape byte followed by two upper-case hex
//! digits. Each name has exactly one spelling, so [`NameEscape::decode`] refuses escapes of bytes
//! that are kept. [`Fnv1a128`] is the stable hash stores use where a name would be too long.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A reversible escaping of names into `[A-Za-z0-9]`, a store's extra allowed bytes, and
/// escapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameEscape {
    escape: u8,
    kept_extra: &'static [u8],
}

impl NameEscape {
    /// An escaping that writes other bytes as `escape` and two hex digits and keeps ASCII
    /// letters, digits and `kept_extra`. `escape` must not be in `kept_extra`.
    pub const fn new(escape: u8, kept_extra: &'static [u8]) -> Self {
        NameEscape { escape, kept_extra }
    }

    fn kept(&self, b: u8) -> bool {
        b.is_ascii_alphanumeric() || (b != self.escape && self.kept_extra.contains(&b))
    }

    /// The escaped form of `name`.
    pub fn encode(&self, name: &str) -> String {
        let mut out = String::with_capacity(name.len());
        for &b in name.as_bytes() {
            if self.kept(b) {
                out.push(char::from(b));
            } else {
                out.push(char::from(self.escape));
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
        out
    }

    /// The name [`encode`](Self::encode) turned into `encoded`; `None` for anything it cannot
    /// have produced (a stray byte, a bad escape, an escaped byte that is kept, bad UTF-8).
    pub fn decode(&self, encoded: &str) -> Option<String> {
        let bytes = encoded.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == self.escape {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                let v = (hi << 4) | lo;
                if self.kept(v) {
                    return None;
                }
                out.push(v);
                i += 3;
            } else if self.kept(b) {
                out.push(b);
                i += 1;
            } else {
                return None;
            }
        }
        String::from_utf8(out).ok()
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The 128-bit FNV-1a hash: stable across versions and platforms, so names built from it stay
/// the same for data already in a store.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a128(u128);

impl Default for Fnv1a128 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    /// A hash of nothing yet.
    pub const fn new() -> Self {
        Fnv1a128(Self::OFFSET)
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
        self
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u128 {
        self.0
    }

    /// The hash of `s`, as 32 lower-case hex digits.
    pub fn hex_of(s: &str) -> String {
        format!("{:032x}", Fnv1a128::new().write(s.as_bytes()).finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNDERSCORE: NameEscape = NameEscape::new(b'_', b"-");
    const PERCENT_DOT: NameEscape = NameEscape::new(b'%', b"-._");

    #[test]
    fn round_trips_and_keeps_only_allowed_bytes() {
        for name in [
            "orders.created",
            "a_b",
            "acme~orders/eu",
            "ünï cödé",
            "",
            "%_%",
        ] {
            for esc in [UNDERSCORE, PERCENT_DOT] {
                let e = esc.encode(name);
                assert!(e.bytes().all(|b| esc.kept(b) || b == esc.escape), "{e}");
                assert_eq!(esc.decode(&e).as_deref(), Some(name));
            }
        }
        assert_eq!(UNDERSCORE.encode("orders.created"), "orders_2Ecreated");
        assert_eq!(UNDERSCORE.encode("a_b"), "a_5Fb");
        assert_eq!(PERCENT_DOT.encode("a_b/c.d"), "a_b%2Fc.d");
    }

    #[test]
    fn refuses_what_encode_cannot_produce() {
        for bad in ["a_41", "a_2", "a_2g", "a.b", "a_2e", "_FF"] {
            assert_eq!(UNDERSCORE.decode(bad), None, "{bad}");
        }
        assert_eq!(PERCENT_DOT.decode("%2E"), None);
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(
            Fnv1a128::new().finish(),
            0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        );
        assert_eq!(
            Fnv1a128::new().write(b"a").finish(),
            0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964
        );
        assert_eq!(Fnv1a128::hex_of("a").len(), 32);
    }
}
