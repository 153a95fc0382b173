//! What S3 and Azure Blob share for object tags: the `<TagSet>` body both read and write, and the
//! characters both want percent-encoded in a key path.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// Characters S3 (and Azure Blob) want percent-encoded in an object key path (everything but
/// unreserved and `/`).
pub(crate) const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `<TagSet>` of `tags`, as S3's tagging and Azure's blob tags bodies hold it.
pub(crate) fn tag_set_xml(tags: &[(String, String)]) -> String {
    let mut xml = String::from("<TagSet>");
    for (k, v) in tags {
        xml.push_str(&format!(
            "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
            xml_escape(k),
            xml_escape(v)
        ));
    }
    xml.push_str("</TagSet>");
    xml
}

/// The tags of an answer whose root element (S3's `<Tagging>`, Azure's `<Tags>`) holds a
/// `<TagSet>`.
pub(crate) fn parse_tag_set(body: &[u8]) -> std::result::Result<Vec<(String, String)>, quick_xml::DeError> {
    let parsed: Tagging = quick_xml::de::from_reader(body)?;
    Ok(parsed.tag_set.tags.into_iter().map(|t| (t.key, t.value)).collect())
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tagging {
    #[serde(default)]
    pub(crate) tag_set: TagSetXml,
}

#[derive(Deserialize, Default)]
pub(crate) struct TagSetXml {
    #[serde(rename = "Tag", default)]
    pub(crate) tags: Vec<TagXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagXml {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) value: String,
}
