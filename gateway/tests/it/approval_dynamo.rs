//! The approvals store of a deployed gateway ([`DynamoStore`]) against a real DynamoDB
//! emulator: moto's, which `localstack/start` runs (`localstack/moto_server.py`; LocalStack's
//! own DynamoDB needs DynamoDB Local, a download these machines cannot make). Each test makes a
//! table of its own, shaped as `infra/modules/gateway` makes it (key `id`, the sparse index
//! `open_binding`, TTL on `expires_at`), and two stores on it are two replicas.
//!
//! `tests/lambda/run.sh` runs these with the emulators it starts; plain `cargo test` ignores
//! them, and they panic when `MOTO_ENDPOINT` is unset:
//!
//! ```sh
//! eval "$(localstack/start)"
//! cargo test -p switchboard-gateway --test it -- --ignored approval_dynamo::
//! localstack/stop
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use switchboard_gateway::approval::dynamo::{KEEP_AFTER_EXPIRY_SECONDS, OPEN_INDEX};
use switchboard_gateway::approval::{
    Approval, Decision, DynamoStore, MAX_ARGUMENTS_BYTES, Store, StoreError,
};
use switchboard_gateway::aws::AwsErrors;

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is unset: start the emulators first (eval \"$(localstack/start)\")")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

/// A fresh table shaped as Terraform makes it; its name.
async fn table() -> String {
    let name = format!("approvals-{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("id", ScalarAttributeType::S))
        .attribute_definitions(attribute("open_binding", ScalarAttributeType::S))
        .attribute_definitions(attribute("created_unix", ScalarAttributeType::N))
        .key_schema(key("id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(OPEN_INDEX)
                .key_schema(key("open_binding", KeyType::Hash))
                .key_schema(key("created_unix", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("index"),
        )
        .send()
        .await
        .expect("CreateTable");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("UpdateTimeToLive");
    name
}

/// A store on `table`, with its own client: one replica.
async fn replica(table: &str) -> DynamoStore {
    DynamoStore::new(&config().await, table, AwsErrors::default())
}

fn approval(id: &str, binding: &str, created_unix: u64, expires_unix: u64) -> Approval {
    Approval {
        id: id.into(),
        binding: binding.into(),
        tool: "apply".into(),
        arguments: serde_json::json!({"plan": "sha256:ab", "targets": ["a", "b"], "<b>": "</b>"}),
        arguments_sha256: "ab".repeat(32),
        timeout_seconds: 60,
        caller: "alice".into(),
        tenant: Some("acme".into()),
        groups: vec!["approvers".into()],
        approver_may_be_caller: false,
        created_unix,
        expires_unix,
        decision: None,
        settled_unix: None,
    }
}

fn decision(by: &str, approved: bool, at_unix: u64) -> Decision {
    Decision {
        approved,
        by: by.into(),
        at_unix,
        reason: Some(format!("{by} says so")),
    }
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn an_approval_reads_back_whole_by_id_and_by_binding() {
    let table = table().await;
    let store = replica(&table).await;
    let t = now();
    let first = approval("r1", "bound", t, t + 900);
    store.create(&first).await.expect("create");
    assert_eq!(store.get("r1").await.expect("get"), Some(first.clone()));
    assert_eq!(store.get("nope").await.expect("get"), None);
    assert_eq!(
        store.open_for("bound").await.expect("open_for"),
        Some(first)
    );
    assert_eq!(store.open_for("other").await.expect("open_for"), None);
    // The newest of a binding's open approvals is the one found; a settled one is not.
    let newer = approval("r2", "bound", t + 1, t + 900);
    store.create(&newer).await.expect("create");
    assert_eq!(
        store
            .open_for("bound")
            .await
            .expect("open_for")
            .map(|a| a.id),
        Some("r2".into())
    );
    store
        .decide("r2", decision("bob", false, t + 2), t + 2)
        .await
        .expect("decide");
    let settled = store.settle("r2", t + 3).await.expect("settle");
    assert_eq!(settled.settled_unix, Some(t + 3));
    assert_eq!(
        store
            .open_for("bound")
            .await
            .expect("open_for")
            .map(|a| a.id),
        Some("r1".into())
    );
    // The same id twice is refused (ids are random: this is never a second approval).
    assert_eq!(
        store.create(&approval("r1", "bound", t, t + 900)).await,
        Err(StoreError::Conflict)
    );
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn a_decision_is_made_once() {
    let table = table().await;
    let store = replica(&table).await;
    let t = now();
    store
        .create(&approval("d1", "b", t, t + 900))
        .await
        .expect("create");
    let decided = store
        .decide("d1", decision("bob", true, t + 1), t + 1)
        .await
        .expect("first decision");
    assert_eq!(decided.decision, Some(decision("bob", true, t + 1)));
    assert_eq!(
        store
            .decide("d1", decision("carol", false, t + 2), t + 2)
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store.get("d1").await.expect("get").and_then(|a| a.decision),
        Some(decision("bob", true, t + 1)),
        "the second decision changed nothing"
    );
    assert_eq!(
        store.decide("nope", decision("bob", true, t), t).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.settle("nope", t).await, Err(StoreError::NotFound));
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn two_replicas_racing_decide_once_and_use_an_approval_once() {
    let table = table().await;
    let replicas = [
        Arc::new(replica(&table).await),
        Arc::new(replica(&table).await),
    ];
    let t = now();
    replicas[0]
        .create(&approval("race", "b", t, t + 900))
        .await
        .expect("create");
    // 16 approvers on two replicas decide at once: one decision lands.
    let decided = futures::future::join_all((0..16).map(|i| {
        let store = Arc::clone(&replicas[i % 2]);
        async move {
            store
                .decide("race", decision(&format!("bob{i}"), true, t + 1), t + 1)
                .await
        }
    }))
    .await;
    assert_eq!(
        decided.iter().filter(|r| r.is_ok()).count(),
        1,
        "{decided:?}"
    );
    assert!(
        decided
            .iter()
            .all(|r| r.is_ok() || r == &Err(StoreError::Conflict)),
        "{decided:?}"
    );
    // 16 retries of the call on two replicas use it at once: one runs.
    let used = futures::future::join_all((0..16).map(|i| {
        let store = Arc::clone(&replicas[i % 2]);
        async move { store.settle("race", t + 2).await }
    }))
    .await;
    assert_eq!(used.iter().filter(|r| r.is_ok()).count(), 1, "{used:?}");
    assert!(
        used.iter()
            .all(|r| r.is_ok() || r == &Err(StoreError::Conflict)),
        "{used:?}"
    );
    for store in &replicas {
        assert_eq!(store.open_for("b").await.expect("open_for"), None);
    }
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn an_expired_approval_is_neither_decided_nor_used_though_its_item_is_still_there() {
    let table = table().await;
    let store = replica(&table).await;
    let t = now();
    // Undecided at its expiry: no decision lands.
    store
        .create(&approval("e1", "b", t, t + 60))
        .await
        .expect("create");
    assert_eq!(
        store
            .decide("e1", decision("bob", true, t + 60), t + 60)
            .await,
        Err(StoreError::Conflict)
    );
    assert!(store.get("e1").await.expect("get").is_some(), "still kept");
    // Approved in time, used too late: it does not run.
    store
        .create(&approval("e2", "b", t, t + 60))
        .await
        .expect("create");
    store
        .decide("e2", decision("bob", true, t + 59), t + 59)
        .await
        .expect("in time");
    assert_eq!(store.settle("e2", t + 60).await, Err(StoreError::Conflict));
    // A denial is told once, whenever it is asked about.
    store
        .create(&approval("e3", "b", t, t + 60))
        .await
        .expect("create");
    store
        .decide("e3", decision("bob", false, t + 59), t + 59)
        .await
        .expect("in time");
    assert!(store.settle("e3", t + 3600).await.is_ok());
    assert_eq!(
        store.settle("e3", t + 3601).await,
        Err(StoreError::Conflict)
    );
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn an_item_past_its_ttl_is_gone_for_the_gateway_before_dynamodb_deletes_it() {
    let table = table().await;
    let store = replica(&table).await;
    // Expired long enough ago that its TTL (expires_at) has passed; moto, like DynamoDB, has
    // not deleted it yet.
    let t = now() - KEEP_AFTER_EXPIRY_SECONDS - 120;
    store
        .create(&approval("old", "stale", t, t + 60))
        .await
        .expect("create");
    let raw = aws_sdk_dynamodb::Client::new(&config().await)
        .get_item()
        .table_name(&table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("old".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    assert!(raw.item.is_some(), "the item is still in the table");
    assert_eq!(store.get("old").await.expect("get"), None);
    assert_eq!(store.open_for("stale").await.expect("open_for"), None);
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn a_restarted_replica_finds_what_the_first_kept_and_decided() {
    let table = table().await;
    let t = now();
    let mut kept = approval("k1", "kept", t, t + 900);
    {
        let first = replica(&table).await;
        first.create(&kept).await.expect("create");
        first
            .decide("k1", decision("bob", true, t + 1), t + 1)
            .await
            .expect("decide");
    }
    let restarted = replica(&table).await;
    kept.decision = Some(decision("bob", true, t + 1));
    assert_eq!(restarted.get("k1").await.expect("get"), Some(kept.clone()));
    assert_eq!(
        restarted.open_for("kept").await.expect("open_for"),
        Some(kept)
    );
    assert!(restarted.settle("k1", t + 2).await.is_ok());
    assert_eq!(
        replica(&table).await.settle("k1", t + 3).await,
        Err(StoreError::Conflict),
        "used once, whichever replica asks"
    );
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn arguments_up_to_the_limit_are_kept_whole_and_larger_ones_refused() {
    let table = table().await;
    let store = replica(&table).await;
    let t = now();
    // Just under the limit: DynamoDB (400 KB per item) keeps it, and it reads back whole.
    let mut big = approval("big", "b", t, t + 900);
    let filler = MAX_ARGUMENTS_BYTES - r#"{"blob":""}"#.len();
    big.arguments = serde_json::json!({"blob": "é".repeat(filler / 2)});
    store
        .create(&big)
        .await
        .expect("a call at the limit is kept");
    assert_eq!(store.get("big").await.expect("get"), Some(big));
    // Over it: refused, nothing written.
    let mut over = approval("over", "b", t, t + 900);
    over.arguments = serde_json::json!({"blob": "x".repeat(MAX_ARGUMENTS_BYTES)});
    assert!(matches!(
        store.create(&over).await,
        Err(StoreError::TooLarge {
            max: MAX_ARGUMENTS_BYTES,
            ..
        })
    ));
    assert_eq!(store.get("over").await.expect("get"), None);
}

#[tokio::test]
#[ignore = "needs moto's DynamoDB: MOTO_ENDPOINT (tests/lambda/run.sh)"]
async fn a_store_whose_table_is_missing_is_unavailable_and_says_which() {
    let store = replica("no-such-approvals-table").await;
    let err = store.get("x").await.expect_err("no table");
    let StoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains("no-such-approvals-table"), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
}
