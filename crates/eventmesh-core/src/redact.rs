//! Secrets kept out of logs, errors and `Debug` output.

/// `url` with the secret of its user info replaced by `***`, for logs and error messages.
///
/// * `scheme://user:password@host/…` becomes `scheme://user:***@host/…` (a password may hold
///   `@` or `:`; the host starts after the last `@` of the authority);
/// * `scheme://secret@host` becomes `scheme://***@host`: Redis and NATS put a password or a
///   token alone there, so a lone user info is treated as a secret;
/// * a comma-separated list (`nats://u:p@h1:4222,h2:4222`) is masked URL by URL;
/// * a list's later hosts may come without a scheme (`h1:4222,u:p@h2:4222`);
/// * anything without user info is returned unchanged.
pub fn mask_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(mask_one).collect::<Vec<_>>().join(",");
    }
    mask_one(url)
}

fn mask_one(url: &str) -> String {
    // The later hosts of a list may come without a scheme (`nats://h1,u:p@h2`).
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***@{host}{path}"),
        None => format!("{scheme}***@{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_are_masked_and_user_names_kept() {
        assert_eq!(
            mask_url("amqp://user:s3cr:et@h:5672/vh"),
            "amqp://user:***@h:5672/vh"
        );
        assert_eq!(
            mask_url("redis://user:p@ss@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(
            mask_url("redis://:s3cret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            mask_url("nats://user:pw@host:4222/x?y=1"),
            "nats://user:***@host:4222/x?y=1"
        );
    }

    #[test]
    fn a_lone_user_info_is_a_secret() {
        assert_eq!(mask_url("redis://tok@h"), "redis://***@h");
        assert_eq!(mask_url("nats://tok@h:1"), "nats://***@h:1");
    }

    #[test]
    fn lists_are_masked_url_by_url() {
        assert_eq!(
            mask_url("nats://u:pw@h1:4222,h2:4222,nats://t@h3:1"),
            "nats://u:***@h1:4222,h2:4222,nats://***@h3:1"
        );
        assert_eq!(
            mask_url("nats://h:1,u:secret@h2:2"),
            "nats://h:1,u:***@h2:2"
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for url in [
            "amqp://h:5672/%2f",
            "redis://h:6379",
            "nats://h1:1,nats://h2:2",
            "not a url",
            "kafka://h:9092/a@b",
            "",
        ] {
            assert_eq!(mask_url(url), url);
        }
    }
}
