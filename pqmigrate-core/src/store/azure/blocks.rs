//! Block blobs written in parts, as S3 takes a multipart upload: each part a block staged under
//! the blob (Put Block), the data region kept in place staged by the service from the blob's
//! current content (Put Block From URL, a source range pinned with `x-ms-source-if-match`), and
//! the new content made visible by one commit of the block list (Put Block List) under
//! `If-Match` or `If-None-Match: *`, carrying the metadata and the index tags. Nothing is
//! visible before the commit; blocks never committed are dropped by the service (at the blob's
//! next commit, or after a week).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::Method;
use object_store::{Attribute, Attributes, PutPayload, TagSet};

use super::rest::{AzureRest, Call};
use crate::error::{Error, Result};
use crate::store::io::{Condition, WriteOptions, Written};
use crate::store::tagging::xml_escape;

/// The largest block the service takes, staged or copied from a URL (service version
/// 2019-12-12 and later).
pub(crate) const LARGEST_BLOCK: u64 = 4000 * 1024 * 1024;

/// The uploads under way in this process: what each commits with.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    open: Mutex<HashMap<String, WriteOptions>>,
}

impl Uploads {
    /// Starts an upload committing with `options`; returns its id, which names its blocks.
    pub(crate) fn start(&self, options: &WriteOptions) -> String {
        let id = format!("{:016x}", rand::random::<u64>());
        self.open.lock().expect("uploads").insert(id.clone(), options.clone());
        id
    }

    /// What `upload` commits with.
    pub(crate) fn options(&self, key: &str, upload: &str) -> Result<WriteOptions> {
        self.open
            .lock()
            .expect("uploads")
            .get(upload)
            .cloned()
            .ok_or_else(|| Error::Config(format!("{key}: no upload {upload} was started by this process")))
    }

    /// Forgets `upload`.
    pub(crate) fn end(&self, upload: &str) {
        self.open.lock().expect("uploads").remove(upload);
    }
}

/// The id of block `index` of `upload`: every id of a blob must have the same length, so
/// upload and index are both written in 16 hex digits (32 characters, as `object_store`'s
/// own uploads name theirs), then Base64 as the service wants.
pub(crate) fn block_id(upload: &str, index: usize) -> String {
    BASE64.encode(format!("{upload:0>16}{index:016x}"))
}

/// A block's id as a query value.
fn query_id(block_id: &str) -> String {
    url::form_urlencoded::byte_serialize(block_id.as_bytes()).collect()
}

/// Stages `data` as block `block_id` of `key` (Put Block).
pub(crate) async fn put_block(rest: &AzureRest, key: &str, block_id: &str, data: PutPayload) -> Result<()> {
    let url = rest.blob_url(key, &format!("comp=block&blockid={}", query_id(block_id)));
    let call = Call {
        body: data.into(),
        ..Call::empty("put block", Method::PUT)
    };
    rest.send(key, &url, call).await?;
    Ok(())
}

/// Stages `range` of the blob at `source_url` (signed to be read), as it is while its ETag is
/// `e_tag`, as block `block_id` of `key` (Put Block From URL): the bytes never leave the service.
pub(crate) async fn put_block_from_url(
    rest: &AzureRest,
    key: &str,
    block_id: &str,
    source_url: &str,
    range: &std::ops::Range<u64>,
    e_tag: &str,
) -> Result<()> {
    let url = rest.blob_url(key, &format!("comp=block&blockid={}", query_id(block_id)));
    let call = Call::empty("put block from URL", Method::PUT)
        .header("x-ms-copy-source", source_url)
        .header("x-ms-source-range", format!("bytes={}-{}", range.start, range.end - 1))
        .header("x-ms-source-if-match", e_tag);
    rest.send(key, &url, call).await?;
    Ok(())
}

/// Makes the blocks `block_ids`, in order, the content of `key` (Put Block List) if
/// `options.condition` holds, with its attributes and tags.
pub(crate) async fn put_block_list(
    rest: &AzureRest,
    key: &str,
    block_ids: &[String],
    options: &WriteOptions,
) -> Result<Written> {
    let mut body = String::from(r#"<?xml version="1.0" encoding="utf-8"?><BlockList>"#);
    for id in block_ids {
        body.push_str("<Latest>");
        body.push_str(&xml_escape(id));
        body.push_str("</Latest>");
    }
    body.push_str("</BlockList>");
    let mut call = Call::xml("put block list", Method::PUT, body);
    match &options.condition {
        Condition::None => {}
        Condition::Create => call = call.header("If-None-Match", "*"),
        Condition::IfMatch(e_tag) => call = call.header("If-Match", e_tag.as_str()),
    }
    call.headers.extend(attribute_headers(&options.attributes));
    if !options.tags.is_empty() {
        let mut tags = TagSet::default();
        for (name, value) in &options.tags {
            tags.push(name, value);
        }
        call = call.header("x-ms-tags", tags.encoded());
    }
    let (headers, _) = rest.send(key, &rest.blob_url(key, "comp=blocklist"), call).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(Written {
        e_tag: header("etag"),
        version_id: header("x-ms-version-id"),
    })
}

/// The headers that set `attributes` on a committed blob, named as the service names them.
fn attribute_headers(attributes: &Attributes) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|(attribute, value)| {
            let name = match attribute {
                Attribute::CacheControl => "x-ms-blob-cache-control".to_string(),
                Attribute::ContentDisposition => "x-ms-blob-content-disposition".to_string(),
                Attribute::ContentEncoding => "x-ms-blob-content-encoding".to_string(),
                Attribute::ContentLanguage => "x-ms-blob-content-language".to_string(),
                Attribute::ContentType => "x-ms-blob-content-type".to_string(),
                Attribute::StorageClass => "x-ms-access-tier".to_string(),
                Attribute::Metadata(name) => format!("x-ms-meta-{name}"),
                _ => return None,
            };
            Some((name, value.as_ref().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_of_a_blob_have_one_length_whatever_the_index() {
        let ids: Vec<String> = [0, 9, 10_000, usize::MAX].iter().map(|&i| block_id("1f", i)).collect();
        assert!(ids.iter().all(|id| id.len() == ids[0].len()), "{ids:?}");
        let decoded = BASE64.decode(&ids[2]).unwrap();
        assert_eq!(decoded, b"000000000000001f0000000000002710");
        assert_eq!(query_id("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
