//! The XML of the S3 calls made beside `object_store`: listings, version listings and error
//! answers, parsed (tag sets are in `tagging`, shared with Azure).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::store::io::Listed;
pub(crate) use crate::store::tagging::{parse_tag_set, tag_set_xml, xml_escape};

/// A ListObjectsV2 answer: its objects (keys decoded where the server URL-encoded them) and
/// the continuation token of the next page.
pub(super) fn parse_list_objects(prefix: &str, body: &[u8]) -> Result<(Vec<Listed>, Option<String>)> {
    let unreadable = |message: String| Error::S3Api {
        key: prefix.to_string(),
        op: "ListObjectsV2",
        status: 200,
        message,
    };
    let page: ListObjectsResult =
        quick_xml::de::from_reader(body).map_err(|e| unreadable(format!("unreadable answer: {e}")))?;
    let url_encoded = page.encoding_type.as_deref() == Some("url");
    let decode = |key: String| -> Result<String> {
        if !url_encoded {
            return Ok(key);
        }
        crate::store::form_decode(&key).ok_or_else(|| unreadable(format!("key {key:?} is not UTF-8")))
    };
    let objects = page
        .contents
        .into_iter()
        .map(|o| {
            Ok(Listed {
                key: decode(o.key)?,
                size: o.size,
                e_tag: o.e_tag,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = page
        .next_continuation_token
        .filter(|token| page.is_truncated && !token.is_empty());
    Ok((objects, next))
}

/// The `<Message>` (or `<Code>`) of an S3 error body, else the body itself, shortened.
pub(super) fn s3_error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(text[start..end].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => text.chars().take(300).collect(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListObjectsResult {
    #[serde(default)]
    pub(super) is_truncated: bool,
    pub(super) next_continuation_token: Option<String>,
    pub(super) encoding_type: Option<String>,
    #[serde(default)]
    pub(super) contents: Vec<ObjectXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ObjectXml {
    pub(super) key: String,
    #[serde(default)]
    pub(super) size: u64,
    #[serde(rename = "ETag")]
    pub(super) e_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListVersionsResult {
    #[serde(default)]
    pub(super) is_truncated: bool,
    pub(super) next_key_marker: Option<String>,
    pub(super) next_version_id_marker: Option<String>,
    #[serde(rename = "Version", default)]
    pub(super) versions: Vec<VersionXml>,
    #[serde(rename = "DeleteMarker", default)]
    pub(super) delete_markers: Vec<VersionXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct VersionXml {
    pub(super) key: String,
    pub(super) version_id: String,
    #[serde(default)]
    pub(super) is_latest: bool,
    #[serde(rename = "ETag")]
    pub(super) e_tag: Option<String>,
}
