//! Other writers racing a run, and the independent check of each object afterwards.

use std::sync::Arc;

use bytes::Bytes;
use pqmigrate::Store;
use pqmigrate::rewrite::Footer;

use super::*;

/// `store` with another writer that puts `theirs` over the object just before each conditional
/// write: the worst moment for a lost update.
pub fn with_racing_writer(store: &Store, theirs: Bytes) -> Store {
    use pqmigrate::store::{SharedIo, WriteOptions};
    use pqmigrate::test_support::fault::FaultConfig;
    let config = FaultConfig {
        before_conditional_put: Some(Arc::new(move |io: SharedIo, key: String| {
            let data = theirs.clone();
            Box::pin(async move {
                io.put(&key, data.into(), WriteOptions::default()).await.unwrap();
            })
        })),
        ..FaultConfig::default()
    };
    store.clone().with_faults(config).0
}

/// What an independent look at one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Byte for byte one of the contents the object was given, never migrated.
    Untouched,
    /// A complete migration of one of its contents: values recomputed and equal, tag and footer
    /// at `version`, each step applied once.
    Migrated { version: u32 },
}

/// Checks one object against the contents it was ever given (`known`, oldest first): it must be
/// exactly one of them, or a full migration of one of them to `target` with tag and footer
/// agreeing. Panics, naming the key, otherwise.
pub async fn check_object(store: &Store, key: &str, known: &[Bytes], target: u32) -> Found {
    let data = raw_bytes(store, key).await;
    let tag_key = pqmigrate::version_key(pqmigrate_sensor_steps::SCHEMA);
    let tags = store.tags(key).await.unwrap().unwrap_or_default();
    let tag = tags.iter().find(|(k, _)| *k == tag_key).map(|(_, v)| v.clone());
    if known.contains(&data) {
        assert_eq!(tag, None, "{key}: original content but a version tag {tag:?}");
        return Found::Untouched;
    }
    let footer = Footer::parse(key, &data).unwrap_or_else(|e| panic!("{key}: neither original nor readable: {e}"));
    let version = footer.version(key, &tag_key).unwrap();
    assert_eq!(version, Some(target), "{key}: footer version");
    assert_eq!(
        tag.as_deref(),
        Some(target.to_string().as_str()),
        "{key}: tag and footer disagree"
    );
    let steps = footer.value(pqmigrate::rewrite::STEPS_FOOTER_KEY).unwrap_or_default();
    let applied: Vec<&str> = steps.split(',').map(|s| s.split('@').next().unwrap()).collect();
    assert_eq!(
        applied,
        ["sensorData:1->2", "sensorData:2->3"][..target as usize - 1],
        "{key}: each step once"
    );
    let migrated = read_all(&data);
    let source = known
        .iter()
        .map(read_all)
        .find(|original| {
            floats(original, "x") == floats(&migrated, "x") && floats(original, "v00") == floats(&migrated, "v00")
        })
        .unwrap_or_else(|| panic!("{key}: migrated from none of its known contents"));
    assert_features_match(&source, &migrated);
    Found::Migrated { version: target }
}

/// What [`OtherWriter`] does to an object, through the store beneath the hook.
pub type OtherWrite = Arc<
    dyn Fn(pqmigrate::store::SharedIo, String) -> futures::future::BoxFuture<'static, pqmigrate::Result<()>>
        + Send
        + Sync,
>;

/// Another writer that acts once per key, when a request of kind `at` about it passes (only a
/// conditional one when `conditional_only`): at a `Get` its change lands while the object is
/// being rewritten, at a conditional `Put` just before the write.
pub struct OtherWriter {
    at: pqmigrate::store::Request,
    conditional_only: bool,
    write: OtherWrite,
    done: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for OtherWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherWriter").field("at", &self.at).finish()
    }
}

/// The tag [`OtherWriter::tag_editor`] adds.
pub const EDITED_TAG: (&str, &str) = ("edited", "by-other");

impl OtherWriter {
    pub fn new(at: pqmigrate::store::Request, conditional_only: bool, write: OtherWrite) -> Self {
        Self {
            at,
            conditional_only,
            write,
            done: Default::default(),
        }
    }

    /// Adds [`EDITED_TAG`] to the object's current tags, keeping the rest.
    pub fn tag_editor(at: pqmigrate::store::Request, conditional_only: bool) -> Self {
        Self::new(
            at,
            conditional_only,
            Arc::new(|io, key| {
                Box::pin(async move {
                    let mut tags = io.get_tags(&key, None).await?;
                    tags.push((EDITED_TAG.0.to_string(), EDITED_TAG.1.to_string()));
                    io.put_tags(&key, None, &tags).await
                })
            }),
        )
    }

    /// Keys it acted on.
    pub fn acted_on(&self) -> Vec<String> {
        self.done.lock().unwrap().iter().cloned().collect()
    }
}

#[async_trait::async_trait]
impl pqmigrate::store::Hook for OtherWriter {
    async fn before(
        &self,
        request: pqmigrate::store::Request,
        key: &str,
        conditional: bool,
        inner: &pqmigrate::store::SharedIo,
    ) -> pqmigrate::Result<()> {
        if request != self.at || (self.conditional_only && !conditional) || key.starts_with("_pqmigrate/") {
            return Ok(());
        }
        if !self.done.lock().unwrap().insert(key.to_string()) {
            return Ok(());
        }
        (self.write)(inner.clone(), key.to_string()).await
    }
}
