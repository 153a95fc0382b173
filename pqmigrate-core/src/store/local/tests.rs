use super::*;
use crate::store::Store;

fn payload(text: &str) -> PutPayload {
    Bytes::from(text.to_string()).into()
}

/// Two stores on one root stand for two processes: of two conditional writes on the same
/// ETag, exactly one lands, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_root_never_both_win_a_conditional_write() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Arc::new(LocalIo::new(dir.path()).unwrap()),
        Arc::new(LocalIo::new(dir.path()).unwrap()),
    );
    for round in 0..100 {
        let key = format!("k/{round}.parquet");
        let first = a.put(&key, payload("v0"), WriteOptions::default()).await.unwrap();
        let condition = Condition::IfMatch(first.e_tag.unwrap());
        let write = |io: Arc<LocalIo>, text: &'static str| {
            let (key, condition) = (key.clone(), condition.clone());
            tokio::spawn(async move {
                let options = WriteOptions {
                    condition,
                    ..WriteOptions::default()
                };
                io.put(&key, payload(text), options).await
            })
        };
        let (x, y) = (write(a.clone(), "from-a"), write(b.clone(), "from-b"));
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert!(x.is_ok() != y.is_ok(), "round {round}: exactly one wins: {x:?} {y:?}");
        let (winner, loser) = if x.is_ok() { ("from-a", y) } else { ("from-b", x) };
        assert!(matches!(loser, Err(Error::Conflict { .. })), "{loser:?}");
        let (_, data) = a.get(&key, ReadOptions::default()).await.unwrap();
        assert_eq!(data, Bytes::from(winner), "round {round}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn paths_that_leave_the_root_through_a_symlink_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f.parquet"), b"theirs").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("d/linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("f.parquet"), root.join("d/file.parquet")).unwrap();
    std::fs::create_dir_all(root.join("d/inner")).unwrap();
    std::os::unix::fs::symlink(root.join("d/inner"), root.join("d/within")).unwrap();
    let store = Store::local(&root).unwrap();
    for key in ["d/linked/f.parquet", "d/file.parquet", "d/linked/new.parquet"] {
        let err = store.head(key).await.unwrap_err().to_string();
        // A key that is itself a link is refused as one, wherever it points.
        let refused = match key {
            "d/file.parquet" => "it is a symbolic link",
            _ => "leads outside the store's root",
        };
        assert!(err.contains(refused), "{key}: {err}");
        let err = store
            .write(key, Bytes::from_static(b"ours"), WriteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key}: {err}");
    }
    assert_eq!(std::fs::read(outside.join("f.parquet")).unwrap(), b"theirs");
    assert!(!outside.join("new.parquet").exists());
    // A link that stays inside the root is followed.
    store
        .put("d/within/a.parquet", Bytes::from_static(b"x"), &[], Default::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("d/inner/a.parquet")).unwrap(), b"x");
}
