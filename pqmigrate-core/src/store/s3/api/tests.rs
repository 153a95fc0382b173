use super::*;
use crate::store::s3::xml::*;
use crate::store::tagging::Tagging;

#[test]
fn parses_tagging_answers() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>schema:sensorData:version</Key><Value>2</Value></Tag><Tag><Key>owner</Key><Value>a&amp;b</Value></Tag></TagSet></Tagging>"#;
    let t: Tagging = quick_xml::de::from_reader(&xml[..]).unwrap();
    let tags: Vec<_> = t.tag_set.tags.into_iter().map(|t| (t.key, t.value)).collect();
    assert_eq!(
        tags,
        vec![
            ("schema:sensorData:version".to_string(), "2".to_string()),
            ("owner".to_string(), "a&b".to_string())
        ]
    );
    let empty: Tagging = quick_xml::de::from_reader(&b"<Tagging><TagSet></TagSet></Tagging>"[..]).unwrap();
    assert!(empty.tag_set.tags.is_empty());
    // Azure's Get Blob Tags answer has another root; the tag set is read alike, and what
    // `tag_set_xml` writes reads back.
    let tags = vec![("team".to_string(), "a<b".to_string())];
    let azure = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Tags>{}</Tags>"#,
        tag_set_xml(&tags)
    );
    assert_eq!(parse_tag_set(azure.as_bytes()).unwrap(), tags);
    assert!(parse_tag_set(b"<Tags><TagSet/></Tags>").unwrap().is_empty());
}

#[test]
fn url_encoded_listings_decode_every_key() {
    let xml = br#"<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t2</NextContinuationToken><EncodingType>url</EncodingType>
<Contents><Key>h/tab%09here/a+b%2Bc%25.parquet</Key><Size>12</Size><ETag>"e"</ETag></Contents>
<Contents><Key>h/%01.parquet</Key><Size>1</Size></Contents></ListBucketResult>"#;
    let (objects, next) = parse_list_objects("h/", xml).unwrap();
    let keys: Vec<_> = objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(keys, vec![("h/tab\there/a b+c%.parquet", 12), ("h/\u{1}.parquet", 1)]);
    assert_eq!(objects[0].e_tag.as_deref(), Some("\"e\""));
    assert_eq!(next.as_deref(), Some("t2"));
    let last =
        br#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a+b</Key></Contents></ListBucketResult>"#;
    let (objects, next) = parse_list_objects("", last).unwrap();
    assert_eq!((objects[0].key.as_str(), next), ("a+b", None));
}

#[test]
fn error_message_prefers_code_and_message() {
    let body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    assert_eq!(s3_error_message(body), "SlowDown: Please reduce your request rate.");
    assert_eq!(s3_error_message(b"plain"), "plain");
}

#[test]
fn keys_are_encoded_like_s3_expects() {
    let enc = utf8_percent_encode("a b/c+d=é.parquet", KEY_ENCODE_SET).to_string();
    assert_eq!(enc, "a%20b/c%2Bd%3D%C3%A9.parquet");
}
