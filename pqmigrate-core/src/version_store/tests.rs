use std::sync::Arc;

use bytes::Bytes;
use object_store::{Attribute, Attributes};

use super::*;

const KEY: &str = "schema:s:version";

fn file(version: Option<u32>) -> Bytes {
    let column = Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef;
    let batch = arrow_array::RecordBatch::try_from_iter([("a", column)]).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    if let Some(v) = version {
        writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(KEY.into(), v.to_string()));
    }
    writer.close().unwrap();
    Bytes::from(out)
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn put(store: &Store, key: &str, footer: Option<u32>, tags: Vec<(String, String)>, attributes: Attributes) {
    store.put(key, file(footer), &tags, attributes).await.unwrap();
}

fn versions(store: &Store) -> VersionStore {
    VersionStore::new(store, KEY, VersionSource::Auto)
}

#[test]
fn the_place_follows_what_the_store_keeps() {
    assert_eq!(versions(&Store::tagged_memory()).place(), VersionPlace::Tag);
    assert_eq!(versions(&Store::memory()).place(), VersionPlace::Metadata);
}

#[tokio::test]
async fn a_rewrite_records_the_version_in_the_tag_or_the_metadata_entry() {
    let tagged = Store::tagged_memory();
    put(
        &tagged,
        "a.parquet",
        Some(2),
        tags(&[("team", "x"), (KEY, "2")]),
        Attributes::new(),
    )
    .await;
    let info = tagged.object_info("a.parquet").await.unwrap();
    let (written_tags, attributes) = versions(&tagged).record(&info, 3).unwrap();
    let mut written_tags = written_tags;
    written_tags.sort();
    assert_eq!(written_tags, tags(&[(KEY, "3"), ("team", "x")]));
    assert!(metadata(&attributes, &version_metadata_name(KEY)).is_none());

    let plain = Store::memory();
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("owner".into()), "ops".into());
    put(&plain, "a.parquet", Some(2), Vec::new(), attributes).await;
    let info = plain.object_info("a.parquet").await.unwrap();
    let (written_tags, attributes) = versions(&plain).record(&info, 3).unwrap();
    assert!(written_tags.is_empty());
    assert_eq!(metadata(&attributes, &version_metadata_name(KEY)), Some("3"));
    assert_eq!(
        metadata(&attributes, "owner"),
        Some("ops"),
        "the object's own metadata is kept"
    );
}

#[tokio::test]
async fn a_scan_reads_the_tag_where_there_are_tags_and_the_footer_elsewhere() {
    // Tag and footer disagree on purpose: which one the quick read consulted shows.
    let tagged = Store::tagged_memory();
    put(&tagged, "a.parquet", Some(2), tags(&[(KEY, "3")]), Attributes::new()).await;
    let head = tagged.head("a.parquet").await.unwrap();
    assert_eq!(
        versions(&tagged)
            .quick("a.parquet", head.size, head.e_tag.clone())
            .await
            .unwrap(),
        3
    );
    let footer_only = VersionStore::new(&tagged, KEY, VersionSource::Footer);
    assert_eq!(footer_only.quick("a.parquet", head.size, head.e_tag).await.unwrap(), 2);

    let plain = Store::memory();
    put(&plain, "a.parquet", Some(2), Vec::new(), Attributes::new()).await;
    let head = plain.head("a.parquet").await.unwrap();
    assert_eq!(
        versions(&plain)
            .quick("a.parquet", head.size, head.e_tag)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn the_metadata_entry_is_held_against_the_footer() {
    let store = Store::memory();
    let entry = |v: &str| {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(version_metadata_name(KEY).into()),
            v.to_string().into(),
        );
        attributes
    };
    put(&store, "agree.parquet", Some(2), Vec::new(), entry("2")).await;
    put(&store, "edited.parquet", Some(2), Vec::new(), entry("3")).await;
    put(&store, "foreign.parquet", Some(2), Vec::new(), Attributes::new()).await;
    put(&store, "garbled.parquet", Some(2), Vec::new(), entry("two")).await;
    let versions = versions(&store);

    let agree = versions.records("agree.parquet").await.unwrap();
    assert_eq!((agree.beside, agree.footer), (Some(Some(2)), Some(2)));
    assert_eq!(agree.agreed("agree.parquet").unwrap(), 2);

    let edited = versions.records("edited.parquet").await.unwrap();
    let err = edited.agreed("edited.parquet").unwrap_err();
    assert_eq!(
        err.to_string(),
        "edited.parquet: version metadata entry says 3 but the Parquet footer says 2; refusing to guess"
    );

    // Written by another tool: no entry, the footer alone.
    let foreign = versions.records("foreign.parquet").await.unwrap();
    assert_eq!((foreign.beside, foreign.agreed("foreign.parquet").unwrap()), (None, 2));

    let garbled = versions.records("garbled.parquet").await.unwrap_err();
    assert_eq!(garbled.kind().name(), "BadVersion");
    assert!(
        garbled
            .to_string()
            .starts_with("garbled.parquet: bad version value \"two\" in metadata")
    );
}

#[tokio::test]
async fn a_stamp_sets_only_the_version_tag_and_never_contradicts_the_footer() {
    let store = Store::tagged_memory();
    put(&store, "a.parquet", Some(2), tags(&[("team", "x")]), Attributes::new()).await;
    put(&store, "b.parquet", None, tags(&[(KEY, "4")]), Attributes::new()).await;
    let versions = versions(&store);

    let err = versions.stamp("a.parquet", 3, false).await.unwrap_err();
    assert_eq!(err.kind().name(), "VersionMismatch");
    versions.stamp("a.parquet", 2, false).await.unwrap();
    let mut now = store.tags("a.parquet").await.unwrap().unwrap();
    now.sort();
    assert_eq!(now, tags(&[(KEY, "2"), ("team", "x")]));

    let err = versions.stamp("b.parquet", 3, false).await.unwrap_err();
    assert_eq!(err.kind().name(), "AlreadyStamped");
    assert_eq!(store.tags("b.parquet").await.unwrap().unwrap(), tags(&[(KEY, "4")]));
    versions.stamp("b.parquet", 3, true).await.unwrap();
    assert_eq!(store.tags("b.parquet").await.unwrap().unwrap(), tags(&[(KEY, "3")]));

    let plain = Store::memory();
    let err = VersionStore::new(&plain, KEY, VersionSource::Auto)
        .can_stamp()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("stamp sets object tags, which memory:// does not have"),
        "{err}"
    );
}
