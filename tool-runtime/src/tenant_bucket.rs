//! The caller's tenant's files in S3: what a tool deployed on AWS reads instead of the tenant
//! folder the local backend mounts.
//!
//! A tool call that names a `bucket` argument reads under `s3://<bucket>/<tenant>/`, the tenant
//! being the `tenant` session tag of this call's credentials (what the gateway verified in the
//! caller's token, and what IAM checks: the work role may read only
//! `<bucket>/${aws:PrincipalTag/tenant}/*`). The layout under that prefix is the tenant folder's
//! (`states/…`, `projects/<name>/…`), so the same relative names work in both places. The catalog
//! pins which buckets a caller may name (an `enum` in the tool's input schema, checked by the
//! gateway before any unit starts); the work role's permissions are what holds when a bucket
//! slips through.
//!
//! An object that does not exist and one IAM does not let this call read both answer "not found
//! for this tenant", so a caller learns nothing of other tenants' files. Requests go out through
//! [`UnitAws`](crate::aws::UnitAws), signed with this call's credentials, with path-style
//! addressing behind the local endpoint proxy (which admits only the declared upstream's host).

use std::path::Path;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use serde_json::Value;

use crate::aws::{UnitAws, UnitAwsError};
use crate::contract::Invocation;

/// The argument that names the bucket.
pub const BUCKET_ARGUMENT: &str = "bucket";
/// The longest relative name accepted.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why the tenant's files in S3 could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error(
        "argument \"bucket\" {0:?} is not an S3 bucket name (3 to 63 of a-z, 0-9, `.` and `-`, \
         beginning and ending with a letter or digit)"
    )]
    BadBucket(String),
    #[error(
        "this call's credentials carry no tenant session tag: the tool reads the caller's \
         tenant's prefix only (the catalog's session_tags must include tenant, and the caller's \
         token must name one)"
    )]
    NoTenant,
    #[error("{what} {name:?}: {why}")]
    BadName {
        what: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("{what} {name:?} not found for this tenant")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} is larger than the tool reads ({limit})")]
    TooLarge {
        what: &'static str,
        name: String,
        limit: String,
    },
    #[error("bucket {0:?} does not exist")]
    NoBucket(String),
    #[error("S3 {operation} failed: {message}")]
    S3 {
        operation: &'static str,
        message: String,
    },
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
    #[error("cannot call S3: {0}")]
    Aws(#[from] UnitAwsError),
}

/// The tenant's prefix of one bucket, read with this call's credentials.
#[derive(Debug, Clone)]
pub struct TenantBucket {
    s3: aws_sdk_s3::Client,
    bucket: String,
    tenant: String,
}

impl TenantBucket {
    /// The bucket the call's `bucket` argument names, under the call's tenant; `None` when the
    /// call names no bucket (the tool then reads its tenant folder).
    pub fn for_call(invocation: &Invocation) -> Result<Option<Self>, BucketError> {
        let Some(bucket) = invocation.arguments.get(BUCKET_ARGUMENT) else {
            return Ok(None);
        };
        let bucket = match bucket {
            Value::String(b) if is_bucket_name(b) => b.clone(),
            other => {
                let shown = other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_owned);
                return Err(BucketError::BadBucket(shown.chars().take(64).collect()));
            }
        };
        let tenant = invocation
            .session_tags
            .get("tenant")
            .filter(|t| is_plain_name(t))
            .ok_or(BucketError::NoTenant)?
            .clone();
        let s3 = UnitAws::for_call(invocation)?.s3()?;
        Ok(Some(Self { s3, bucket, tenant }))
    }

    /// The tenant whose prefix this is.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `<tenant>/<name>`, after checking that `name` stays under the tenant's prefix.
    pub fn key_of(&self, what: &'static str, name: &str) -> Result<String, BucketError> {
        check_relative(what, name)?;
        Ok(format!("{}/{name}", self.tenant))
    }

    /// The object `<tenant>/<name>`, at most `max` bytes.
    pub fn read(&self, what: &'static str, name: &str, max: u64) -> Result<Vec<u8>, BucketError> {
        let key = self.key_of(what, name)?;
        let (s3, bucket) = (self.s3.clone(), self.bucket.clone());
        let not_found = || BucketError::NotFound {
            what,
            name: name.to_owned(),
        };
        let too_large = || BucketError::TooLarge {
            what,
            name: name.to_owned(),
            limit: format!("{max} bytes"),
        };
        let got = crate::aws::block_on(async move { get(&s3, &bucket, &key, max).await }).map_err(
            |message| BucketError::S3 {
                operation: "GetObject",
                message,
            },
        )?;
        match got {
            Got::Body(bytes) => Ok(bytes),
            Got::Missing => Err(not_found()),
            Got::TooLarge => Err(too_large()),
            Got::NoBucket => Err(BucketError::NoBucket(self.bucket.clone())),
        }
    }

    /// Copies every object under `<tenant>/<name>/` into the folder `to`, keeping the layout
    /// below that prefix (no `.terraform` folder, no folder markers), within `max_files` objects
    /// and `max_bytes` bytes. A prefix with no object is "not found".
    pub fn download_folder(
        &self,
        what: &'static str,
        name: &str,
        to: &Path,
        max_files: usize,
        max_bytes: u64,
    ) -> Result<usize, BucketError> {
        let prefix = format!("{}/", self.key_of(what, name)?);
        let too_large = || BucketError::TooLarge {
            what,
            name: name.to_owned(),
            limit: format!("{max_files} files, {max_bytes} bytes"),
        };
        let (s3, bucket) = (self.s3.clone(), self.bucket.clone());
        let listed = {
            let prefix = prefix.clone();
            crate::aws::block_on(async move { list(&s3, &bucket, &prefix).await })
        }
        .map_err(|message| BucketError::S3 {
            operation: "ListObjectsV2",
            message,
        })?;
        let objects = match listed {
            Listed::Objects(objects) => objects,
            Listed::Denied => Vec::new(),
            Listed::NoBucket => return Err(BucketError::NoBucket(self.bucket.clone())),
        };
        let mut wanted = Vec::new();
        let mut bytes = 0u64;
        for (key, size) in objects {
            let relative = &key[prefix.len()..];
            if relative.is_empty() || relative.ends_with('/') {
                continue;
            }
            let parts: Vec<&str> = relative.split('/').collect();
            if parts
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
            {
                return Err(BucketError::BadName {
                    what,
                    name: name.to_owned(),
                    why: "holds an object whose key has an empty, `.` or `..` segment",
                });
            }
            if parts[..parts.len() - 1].contains(&".terraform") {
                continue;
            }
            bytes += size;
            wanted.push((key.clone(), relative.to_owned()));
            if wanted.len() > max_files || bytes > max_bytes {
                return Err(too_large());
            }
        }
        if wanted.is_empty() {
            return Err(BucketError::NotFound {
                what,
                name: name.to_owned(),
            });
        }
        let (s3, bucket) = (self.s3.clone(), self.bucket.clone());
        let keys: Vec<String> = wanted.iter().map(|(k, _)| k.clone()).collect();
        let bodies = crate::aws::block_on(async move {
            let mut bodies = Vec::with_capacity(keys.len());
            for key in keys {
                bodies.push(get(&s3, &bucket, &key, max_bytes).await?);
            }
            Ok(bodies)
        })
        .map_err(|message| BucketError::S3 {
            operation: "GetObject",
            message,
        })?;
        let mut total = 0u64;
        for ((_, relative), got) in wanted.iter().zip(bodies) {
            let Got::Body(body) = got else {
                // Listed a moment ago and gone or grown since: the project changed mid-read.
                return Err(BucketError::S3 {
                    operation: "GetObject",
                    message: format!("{relative} changed while it was read; try again"),
                });
            };
            total += body.len() as u64;
            if total > max_bytes {
                return Err(too_large());
            }
            let path = to.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| BucketError::Write(parent.display().to_string(), e))?;
            }
            std::fs::write(&path, body)
                .map_err(|e| BucketError::Write(path.display().to_string(), e))?;
        }
        Ok(wanted.len())
    }
}

/// What a `GetObject` gave.
enum Got {
    Body(Vec<u8>),
    Missing,
    TooLarge,
    NoBucket,
}

/// `GetObject`: the body when it is at most `max` bytes. Not found and access denied are
/// [`Got::Missing`].
async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, max: u64) -> Result<Got, String> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            return match e.code() {
                Some("NoSuchKey" | "AccessDenied" | "NotFound") => Ok(Got::Missing),
                Some("NoSuchBucket") => Ok(Got::NoBucket),
                _ => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
            };
        }
    };
    if out
        .content_length()
        .is_some_and(|n| u64::try_from(n).unwrap_or(u64::MAX) > max)
    {
        return Ok(Got::TooLarge);
    }
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("reading {key}: {e}"))?
        .into_bytes();
    if body.len() as u64 > max {
        return Ok(Got::TooLarge);
    }
    Ok(Got::Body(body.to_vec()))
}

/// What a listing gave.
enum Listed {
    Objects(Vec<(String, u64)>),
    Denied,
    NoBucket,
}

/// Every key under `prefix`, with its size (`ListObjectsV2`, page after page).
async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Listed, String> {
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                return match e.code() {
                    Some("AccessDenied") => Ok(Listed::Denied),
                    Some("NoSuchBucket") => Ok(Listed::NoBucket),
                    _ => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
                };
            }
        };
        for object in page.contents() {
            if let Some(key) = object.key().filter(|k| k.starts_with(prefix)) {
                let size = object
                    .size()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0);
                objects.push((key.to_owned(), size));
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(Listed::Objects(objects)),
        }
    }
}

/// A name under the tenant's prefix: not empty, at most [`MAX_NAME_BYTES`], not starting with
/// `/`, and no empty, `.` or `..` segment.
pub fn check_relative(what: &'static str, name: &str) -> Result<(), BucketError> {
    let bad = |why| {
        Err(BucketError::BadName {
            what,
            name: name.chars().take(64).collect(),
            why,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("is longer than 1024 bytes");
    }
    if name.starts_with('/') {
        return bad("must be relative to the tenant's folder");
    }
    if name.split('/').any(|p| p == "..") {
        return bad("must not contain `..`");
    }
    if name.split('/').any(|p| p.is_empty() || p == ".") {
        return bad("must not have an empty or `.` segment");
    }
    Ok(())
}

/// An S3 bucket name (the rules of general-purpose buckets, without the reserved prefixes).
fn is_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

/// A tenant fit for a key prefix: not empty, no `/`, not `.` or `..`.
fn is_plain_name(tenant: &str) -> bool {
    !tenant.is_empty() && !tenant.contains('/') && tenant != "." && tenant != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invocation(arguments: Value, tags: Value) -> Invocation {
        serde_json::from_value(json!({
            "invocationId": "i", "tool": "state_validate", "arguments": arguments,
            "deadlineUnixMs": 0, "sessionTags": tags,
        }))
        .expect("valid invocation")
    }

    #[test]
    fn names_stay_under_the_tenants_prefix() {
        for ok in ["states/clean.tfstate", "production.tfstate", "projects/web"] {
            assert!(check_relative("state", ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "relative"),
            ("../globex/states/x", "`..`"),
            ("states/../../globex/x", "`..`"),
            ("states//x", "segment"),
            ("./x", "segment"),
        ] {
            let e = check_relative("state", bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        assert!(check_relative("state", &"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for ok in ["abc", "switchboard-example-tfstate", "a.b-c.1"] {
            assert!(is_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn without_a_bucket_argument_there_is_no_bucket() {
        let none = TenantBucket::for_call(&invocation(json!({"state": "x"}), json!({})));
        assert!(matches!(none, Ok(None)));
    }

    #[test]
    fn a_bucket_needs_a_good_name_a_tenant_tag_and_credentials() {
        let e = TenantBucket::for_call(&invocation(
            json!({"bucket": "Bad_Name"}),
            json!({"tenant": "acme"}),
        ))
        .expect_err("bad bucket");
        assert!(matches!(e, BucketError::BadBucket(_)), "{e}");
        let e = TenantBucket::for_call(&invocation(json!({"bucket": 7}), json!({})))
            .expect_err("not a string");
        assert!(matches!(e, BucketError::BadBucket(_)), "{e}");
        for tags in [json!({}), json!({"tenant": ""}), json!({"tenant": "a/b"})] {
            let e = TenantBucket::for_call(&invocation(json!({"bucket": "tfstate"}), tags))
                .expect_err("no tenant");
            assert!(matches!(e, BucketError::NoTenant), "{e}");
        }
        let e = TenantBucket::for_call(&invocation(
            json!({"bucket": "tfstate"}),
            json!({"tenant": "acme"}),
        ))
        .expect_err("no credentials");
        assert!(e.to_string().contains("no AWS credentials"), "{e}");
    }
}
