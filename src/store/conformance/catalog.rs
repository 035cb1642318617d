//! `CatalogStore`: stream mappings and audience definitions.

use super::*;

pub(super) async fn mappings_and_audiences(store: &dyn Store) {
    assert!(matches!(
        store.get_mapping("web").await,
        Err(StoreError::NotFound { .. })
    ));
    let first = store.put_mapping("web", "v1").await.unwrap();
    assert_eq!((first.stream.as_str(), first.text.as_str()), ("web", "v1"));
    let second = store.put_mapping("web", "v2").await.unwrap();
    store.put_mapping("app", "a1").await.unwrap();
    assert_eq!(store.get_mapping("web").await.unwrap(), second);
    let streams: Vec<String> = store
        .list_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.stream)
        .collect();
    assert_eq!(streams, ["app", "web"]);

    let vip = audience("aud1", "vip");
    store.insert_audience(vip.clone()).await.unwrap();
    store
        .insert_audience(audience("aud2", "all"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_audience(audience("aud3", "vip")).await,
        Err(StoreError::Conflict(_))
    ));
    let changed = Audience {
        name: "Very important".into(),
        filter: "visits > 5".into(),
        ..vip
    };
    store.update_audience(changed.clone()).await.unwrap();
    let stored = store.get_audience("vip").await.unwrap();
    assert_eq!((stored.name, stored.filter), (changed.name, changed.filter));
    let listed: Vec<(String, u64)> = store
        .list_audiences()
        .await
        .unwrap()
        .into_iter()
        .map(|(a, members)| (a.slug, members))
        .collect();
    assert_eq!(listed, [("all".to_string(), 0), ("vip".to_string(), 0)]);
    store.delete_audience("vip").await.unwrap();
    assert!(matches!(
        store.get_audience("vip").await,
        Err(StoreError::NotFound { .. })
    ));
}
