//! `ControlStore`: authorizations and jobs.

use super::*;

pub(super) async fn authorizations(store: &dyn Store) {
    store
        .insert_authorization(auth("a1", "prod"))
        .await
        .unwrap();
    let role = Authorization {
        credentials: Credentials::AwsRole {
            role_arn: "arn:aws:iam::1:role/x".into(),
            external_id: "ext".into(),
        },
        ..auth("a2", "delegated")
    };
    store.insert_authorization(role.clone()).await.unwrap();
    assert!(matches!(
        store.insert_authorization(auth("a3", "prod")).await,
        Err(StoreError::Conflict(_))
    ));
    let all = store.list_authorizations().await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    assert_eq!(
        store.get_authorization("a2").await.unwrap().credentials,
        role.credentials
    );
    assert!(matches!(
        store.get_authorization("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_authorization("a2").await.unwrap();
    assert!(matches!(
        store.delete_authorization("a2").await,
        Err(StoreError::NotFound { .. })
    ));
}
