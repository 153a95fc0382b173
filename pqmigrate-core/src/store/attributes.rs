//! What travels with an object besides its bytes: its tags, checked against S3's limits before
//! every write, and its user metadata (`x-amz-meta-<name>` on S3).

use object_store::{Attribute, Attributes};

use crate::error::{Error, Result};

/// S3's limits on object tags, checked before every write.
pub const S3_MAX_TAGS: usize = 10;
/// Longest tag key S3 accepts.
pub const S3_MAX_TAG_KEY: usize = 128;
/// Longest tag value S3 accepts.
pub const S3_MAX_TAG_VALUE: usize = 256;

/// The value of a user metadata entry (`x-amz-meta-<name>` on S3).
pub fn metadata<'a>(attributes: &'a Attributes, name: &str) -> Option<&'a str> {
    attributes
        .get(&Attribute::Metadata(name.to_string().into()))
        .map(|v| v.as_ref())
}

/// Attributes holding one user metadata entry (`x-amz-meta-<name>` on S3).
pub fn user_metadata(pairs: &[(&str, &str)]) -> Attributes {
    let mut attributes = Attributes::new();
    for (k, v) in pairs {
        attributes.insert(Attribute::Metadata(k.to_string().into()), v.to_string().into());
    }
    attributes
}

/// Checks tags against S3's limits (10 tags, keys up to 128 and values up to 256 characters).
///
/// # Errors
/// [`Error::Limit`] naming the key and the limit.
pub fn check_tag_limits(key: &str, tags: &[(String, String)]) -> Result<()> {
    let limit = |message: String| {
        Err(Error::Limit {
            key: key.to_string(),
            message,
        })
    };
    if tags.len() > S3_MAX_TAGS {
        return limit(format!(
            "writing the version tag would give the object {} tags; S3 allows {S3_MAX_TAGS}",
            tags.len()
        ));
    }
    for (k, v) in tags {
        if k.chars().count() > S3_MAX_TAG_KEY {
            return limit(format!("tag key {k:?} is longer than S3's {S3_MAX_TAG_KEY} characters"));
        }
        if v.chars().count() > S3_MAX_TAG_VALUE {
            return limit(format!(
                "value of tag {k:?} is longer than S3's {S3_MAX_TAG_VALUE} characters"
            ));
        }
    }
    Ok(())
}
