//! `multipart/form-data` bodies (RFC 7578), read the way the Java runtime reads the forms of its
//! request-code protocol: only the text fields (parts without a `filename`) are kept; file parts
//! are skipped.
//!
//! ```text
//! Content-Type: multipart/form-data; boundary=XyZ
//!
//! --XyZ\r\n
//! Content-Disposition: form-data; name="topic"\r\n
//! \r\n
//! orders\r\n
//! --XyZ\r\n
//! Content-Disposition: form-data; name="content"\r\n
//! Content-Type: text/plain; charset=UTF-8\r\n
//! \r\n
//! {"a":1}\r\n
//! --XyZ--\r\n
//! ```
//!
//! The decoder works on a whole body that the caller has already bounded in size; it allocates
//! only for the fields it returns and refuses more than [`MAX_PARTS`] parts or part headers
//! longer than [`MAX_HEADER_BYTES`].

/// Parts a body may have.
pub const MAX_PARTS: usize = 1_000;
/// Bytes the headers of one part may take.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// One text field of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormField {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// Its content, as UTF-8.
    pub value: String,
}

/// Why a multipart body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The content type is not `multipart/form-data` with a usable `boundary`.
    #[error("content type: {0}")]
    ContentType(String),
    /// The body does not follow the multipart syntax.
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// Too many parts, or a part's headers are too long.
    #[error("multipart body over a limit: {0}")]
    TooLarge(String),
    /// A text field is not UTF-8.
    #[error("multipart field `{0}` is not UTF-8")]
    NotUtf8(String),
}

/// The boundary of a `multipart/form-data` content type (RFC 2046: 1 to 70 characters, quoted or
/// not).
///
/// # Errors
///
/// [`MultipartError::ContentType`] for another media type, or a missing or invalid boundary.
pub fn form_data_boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::ContentType(format!(
            "`{media}` is not multipart/form-data"
        )));
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("boundary") {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or(v);
        if v.is_empty() || v.len() > 70 || v.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(MultipartError::ContentType(format!(
                "boundary `{v}` is invalid: use 1 to 70 characters"
            )));
        }
        return Ok(v.to_owned());
    }
    Err(MultipartError::ContentType(
        "multipart/form-data without a boundary parameter".to_owned(),
    ))
}

/// The text fields of a `multipart/form-data` body, in body order.
///
/// # Errors
///
/// [`MultipartError::Malformed`] for a body that breaks the syntax (the boundary missing, a part
/// without a `form-data` `Content-Disposition` naming it, no closing boundary),
/// [`MultipartError::TooLarge`] over [`MAX_PARTS`] or [`MAX_HEADER_BYTES`], and
/// [`MultipartError::NotUtf8`] for a text field that is not UTF-8.
pub fn parse_form_data(body: &[u8], boundary: &str) -> Result<Vec<FormField>, MultipartError> {
    let delimiter = [b"--", boundary.as_bytes()].concat();
    // The first delimiter opens the body or follows a preamble line.
    let mut at = if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        let inner = [b"\r\n", delimiter.as_slice()].concat();
        find(body, &inner)
            .map(|i| i + inner.len())
            .ok_or_else(|| malformed("the boundary does not occur in the body"))?
    };
    let close_delimiter = [b"\r\n", delimiter.as_slice()].concat();
    let mut fields = Vec::new();
    for parts in 0.. {
        // After a delimiter: `--` closes the body, else optional padding and CRLF.
        if body[at..].starts_with(b"--") {
            return Ok(fields);
        }
        while matches!(body.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err(malformed("a boundary line does not end with CRLF"));
        }
        at += 2;
        if parts >= MAX_PARTS {
            return Err(MultipartError::TooLarge(format!(
                "more than {MAX_PARTS} parts"
            )));
        }
        let rest = &body[at..];
        let (headers, content_at) = if rest.starts_with(b"\r\n") {
            (&rest[..0], 2)
        } else {
            let end = find(rest, b"\r\n\r\n")
                .ok_or_else(|| malformed("the headers of a part do not end"))?;
            (&rest[..end], end + 4)
        };
        if headers.len() > MAX_HEADER_BYTES {
            return Err(MultipartError::TooLarge(format!(
                "the headers of part {} are over {MAX_HEADER_BYTES} bytes",
                parts + 1
            )));
        }
        let content_start = at + content_at;
        let len = find(&body[content_start..], &close_delimiter)
            .ok_or_else(|| malformed("the body ends without a closing boundary"))?;
        let content = &body[content_start..content_start + len];
        at = content_start + len + close_delimiter.len();
        if let Some(name) = field_name(headers)? {
            let value = std::str::from_utf8(content)
                .map_err(|_| MultipartError::NotUtf8(name.clone()))?
                .to_owned();
            fields.push(FormField { name, value });
        }
    }
    Ok(fields)
}

/// Encodes text fields as a `multipart/form-data` body with `boundary`, which must not occur in
/// any name or value (names are quoted, with `"` and `\` escaped; they must not hold CR or LF).
#[must_use]
pub fn encode_form_data(fields: &[FormField], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let name = f.name.replace('\\', "\\\\").replace('"', "\\\"");
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\"\r\n\r\n");
        out.extend_from_slice(f.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

fn malformed(what: &str) -> MultipartError {
    MultipartError::Malformed(what.to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// The field name of a text part; `None` for a file part (it has a `filename`).
fn field_name(headers: &[u8]) -> Result<Option<String>, MultipartError> {
    let text = std::str::from_utf8(headers)
        .map_err(|_| malformed("the headers of a part are not UTF-8"))?;
    let disposition = text
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, v)| v)
        .ok_or_else(|| malformed("a part has no Content-Disposition header"))?;
    let mut params = Params(disposition);
    let kind = params.token();
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(malformed(&format!(
            "a part's disposition is `{kind}`, not form-data"
        )));
    }
    let mut name = None;
    let mut file = false;
    while let Some((k, v)) = params.next_param()? {
        if k.eq_ignore_ascii_case("name") {
            name.get_or_insert(v);
        } else if k.eq_ignore_ascii_case("filename") || k.eq_ignore_ascii_case("filename*") {
            file = true;
        }
    }
    if file {
        return Ok(None);
    }
    name.map(Some)
        .ok_or_else(|| malformed("a part's Content-Disposition has no name"))
}

/// A reader of `token; key=value; key="quoted \" value"` header values.
struct Params<'a>(&'a str);

impl Params<'_> {
    fn token(&mut self) -> String {
        let s = self.0.trim_start();
        let end = s.find(';').unwrap_or(s.len());
        self.0 = &s[end..];
        s[..end].trim().to_owned()
    }

    fn next_param(&mut self) -> Result<Option<(String, String)>, MultipartError> {
        let s = self.0.trim_start();
        let Some(s) = s.strip_prefix(';') else {
            return if s.trim().is_empty() {
                Ok(None)
            } else {
                Err(malformed("unexpected text in Content-Disposition"))
            };
        };
        let s = s.trim_start();
        if s.is_empty() {
            self.0 = s;
            return Ok(None);
        }
        let eq = s
            .find('=')
            .ok_or_else(|| malformed("a Content-Disposition parameter has no value"))?;
        let key = s[..eq].trim().to_owned();
        let v = s[eq + 1..].trim_start();
        if let Some(quoted) = v.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.0 = &quoted[i + 1..];
                        return Ok(Some((key, value)));
                    }
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    c => value.push(c),
                }
            }
            Err(malformed("a quoted Content-Disposition value does not end"))
        } else {
            let end = v.find(';').unwrap_or(v.len());
            self.0 = &v[end..];
            Ok(Some((key, v[..end].trim().to_owned())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (headers, content) in parts {
            b.extend_from_slice(b"--B0und\r\n");
            b.extend_from_slice(headers.as_bytes());
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(content.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--B0und--\r\n");
        b
    }

    #[test]
    fn boundary_of_content_types() {
        assert_eq!(
            form_data_boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            form_data_boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b:c\"").unwrap(),
            "a b:c"
        );
        assert!(form_data_boundary("multipart/mixed; boundary=abc").is_err());
        assert!(form_data_boundary("multipart/form-data").is_err());
        assert!(form_data_boundary("multipart/form-data; boundary=").is_err());
        assert!(
            form_data_boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71)))
                .is_err()
        );
    }

    #[test]
    fn text_fields_in_order_and_file_parts_skipped() {
        let b = body(&[
            ("Content-Disposition: form-data; name=\"topic\"", "orders"),
            (
                "content-disposition: form-data; name=content\r\nContent-Type: text/plain; charset=UTF-8",
                "{\"a\":1}\r\nline two",
            ),
            (
                "Content-Disposition: form-data; name=\"upload\"; filename=\"x.bin\"",
                "ignored",
            ),
            ("Content-Disposition: form-data; name=\"q\\\"uoted\"", ""),
        ]);
        let fields = parse_form_data(&b, "B0und").unwrap();
        assert_eq!(
            fields,
            vec![
                FormField {
                    name: "topic".into(),
                    value: "orders".into()
                },
                FormField {
                    name: "content".into(),
                    value: "{\"a\":1}\r\nline two".into()
                },
                FormField {
                    name: "q\"uoted".into(),
                    value: String::new()
                },
            ]
        );
    }

    #[test]
    fn encoded_fields_decode_to_themselves() {
        let fields = vec![
            FormField {
                name: "content".into(),
                value: "{\"a\":\"b\\r\\n\"}\r\n--not-the-boundary".into(),
            },
            FormField {
                name: "we\"ird\\name".into(),
                value: String::new(),
            },
        ];
        let b = encode_form_data(&fields, "zz-9");
        assert_eq!(parse_form_data(&b, "zz-9").unwrap(), fields);
    }

    #[test]
    fn preamble_and_epilogue_are_ignored() {
        let mut b = b"preamble text\r\n".to_vec();
        b.extend(body(&[("Content-Disposition: form-data; name=a", "1")]));
        b.extend_from_slice(b"epilogue");
        assert_eq!(parse_form_data(&b, "B0und").unwrap().len(), 1);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let ok = body(&[("Content-Disposition: form-data; name=a", "1")]);
        // Truncated anywhere: an error, never a panic.
        for cut in 0..ok.len() - 4 {
            assert!(
                parse_form_data(&ok[..cut], "B0und").is_err(),
                "cut at {cut}"
            );
        }
        assert!(parse_form_data(&ok, "other").is_err());
        let no_disposition = body(&[("Content-Type: text/plain", "1")]);
        assert!(matches!(
            parse_form_data(&no_disposition, "B0und"),
            Err(MultipartError::Malformed(_))
        ));
        let not_utf8 = [
            b"--B0und\r\nContent-Disposition: form-data; name=a\r\n\r\n".as_slice(),
            &[0xff, 0xfe],
            b"\r\n--B0und--",
        ]
        .concat();
        assert_eq!(
            parse_form_data(&not_utf8, "B0und"),
            Err(MultipartError::NotUtf8("a".into()))
        );
    }

    #[test]
    fn part_limits() {
        let many: Vec<(&str, &str)> =
            vec![("Content-Disposition: form-data; name=a", "1"); MAX_PARTS + 1];
        assert!(matches!(
            parse_form_data(&body(&many), "B0und"),
            Err(MultipartError::TooLarge(_))
        ));
        let long = format!(
            "Content-Disposition: form-data; name=a\r\nX-Pad: {}",
            "p".repeat(MAX_HEADER_BYTES)
        );
        assert!(matches!(
            parse_form_data(&body(&[(long.as_str(), "1")]), "B0und"),
            Err(MultipartError::TooLarge(_))
        ));
    }
}
