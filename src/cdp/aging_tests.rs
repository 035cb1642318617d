//! Windowed fields and engagement scores age with the clock: the time-relative re-evaluation
//! makes members exit when their events leave the window, with the exit in the outbox.

use std::sync::Arc;

use chrono::{Duration, DurationRound, Utc};
use serde_json::{json, Value};

use super::Cdp;
use crate::metrics::Metrics;
use crate::store::{Audience, ChangeKind, DynStore, NewEvent};

async fn cdp() -> (Cdp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(
        crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap(),
    );
    let cdp = Cdp::new(store.into(), Metrics::new());
    cdp.set_mapping(
        "shop",
        r#"SELECT user_id AS user_id,
               count(*) AS purchases_30d KIND int WINDOW 30d IF eq(event, "purchase"),
               sum(amount) AS spent_36h WINDOW 36h
           FROM shop INTO user BY user_id"#,
    )
    .await
    .unwrap();
    (cdp, dir)
}

async fn send(cdp: &Cdp, events: Vec<Value>) {
    let events = events
        .into_iter()
        .map(|v| NewEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            fields: v.as_object().unwrap().clone().into(),
            origin: None,
        })
        .collect();
    cdp.stores()
        .events
        .append_events("shop", events)
        .await
        .unwrap();
}

fn audience(slug: &str, filter: &str) -> Audience {
    Audience {
        id: format!("id-{slug}"),
        slug: slug.into(),
        name: slug.into(),
        description: String::new(),
        filter: filter.into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

async fn changes(cdp: &Cdp, after: i64) -> Vec<(String, ChangeKind, i64)> {
    cdp.stores()
        .outbox
        .list_audience_changes(after, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.audience_slug, c.kind, c.seq))
        .collect()
}

#[tokio::test]
async fn members_exit_when_their_events_leave_the_window() {
    let (cdp, _dir) = cdp().await;
    cdp.create_audience(audience("buyers", "purchases_30d >= 2"))
        .await
        .unwrap();
    cdp.create_audience(audience("active", "AND (recency > 40, momentum > 60)"))
        .await
        .unwrap();
    // Two purchases 20 and 10 days ago (by event time), a view today.
    let day = Utc::now().duration_trunc(Duration::days(1)).unwrap();
    let ts = |d: Duration| (day - d + Duration::hours(12)).to_rfc3339();
    send(
        &cdp,
        vec![
            json!({"user_id": "u", "event": "purchase", "amount": 5, "ts": ts(Duration::days(20))}),
            json!({"user_id": "u", "event": "purchase", "amount": 7, "ts": ts(Duration::days(10))}),
            json!({"user_id": "u", "event": "view", "ts": ts(Duration::days(0))}),
        ],
    )
    .await;
    cdp.drain().await.unwrap();
    let entered = changes(&cdp, 0).await;
    let kinds: Vec<_> = entered.iter().map(|(s, k, _)| (s.as_str(), *k)).collect();
    assert_eq!(
        kinds,
        [("active", ChangeKind::Enter), ("buyers", ChangeKind::Enter)]
    );
    let last = entered.last().unwrap().2;

    // Nine days on, the first purchase is still inside the 30 days: nobody moves.
    cdp.set_clock_offset(Duration::days(9));
    assert_eq!(
        cdp.reevaluate_time_relative(true).await.unwrap(),
        1,
        "active decays"
    );
    let after_nine = changes(&cdp, last).await;
    assert_eq!(
        after_nine
            .iter()
            .map(|(s, k, _)| (s.as_str(), *k))
            .collect::<Vec<_>>(),
        [("active", ChangeKind::Exit)]
    );
    // Eleven days on, the purchase of 20 days ago is 31 days old: `buyers` loses her.
    cdp.set_clock_offset(Duration::days(11));
    assert_eq!(cdp.reevaluate_time_relative(true).await.unwrap(), 1);
    let exits = changes(&cdp, after_nine[0].2).await;
    assert_eq!(
        exits
            .iter()
            .map(|(s, k, _)| (s.as_str(), *k))
            .collect::<Vec<_>>(),
        [("buyers", ChangeKind::Exit)]
    );
    // The profile as stored still holds both purchases' buckets; its value at the clock is 1.
    let rows = cdp
        .stores()
        .profiles
        .lookup_identities(vec![("user_id".into(), "u".into())])
        .await
        .unwrap();
    let p = cdp
        .stores()
        .profiles
        .get_profile(&rows[0].profile_id)
        .await
        .unwrap();
    let now = cdp.now();
    let view = p.state.filter_json(now);
    assert_eq!(view["purchases_30d"], json!(1));
    assert_eq!(view["spent_36h"], json!(0));
    // Recency halves every 7 days since the last event (today at noon, by event time).
    let days = (now - (day + Duration::hours(12))).num_seconds() as f64 / 86_400.0;
    let recency = (100.0 * 0.5f64.powf(days / 7.0)).round();
    assert_eq!(view["recency"], json!(recency as u8));
}
