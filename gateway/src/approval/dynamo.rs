//! [`DynamoStore`]: the approvals every replica of a deployed gateway shares, in the DynamoDB
//! table Terraform made (`infra/modules/gateway`, the bindings' `approvals.table_name`). They
//! survive a replica's restart; every replica reads and writes the same items.
//!
//! - **One item per approval**, keyed by its id (`id`). The call's fields are attributes of
//!   their own; the decision is flattened into `approved`, `decided_by`, `decided_unix` and
//!   `decision_reason`, so that the conditions below can name it.
//! - **A decision is made once, an approval used once.** [`Store::decide`] and [`Store::settle`]
//!   are `UpdateItem`s with a `ConditionExpression`: decide only while there is no decision and
//!   before `expires_unix`; settle only once decided, not yet settled, and (for an approval)
//!   before `expires_unix`. DynamoDB evaluates the condition and writes atomically per item, so
//!   of any number of replicas racing, one wins and the others get
//!   `ConditionalCheckFailedException`, read as [`StoreError::Conflict`].
//! - **Found by what the call is bound to, without a scan.** While an approval is not settled its
//!   item carries `open_binding` (the binding); the sparse global secondary index
//!   [`OPEN_INDEX`] is keyed by it and `created_unix`, projects the keys only, and loses the item
//!   when settle removes the attribute. [`Store::open_for`] asks the index for the newest ids and
//!   reads each item itself (a consistent `GetItem`: the index is eventually consistent).
//! - **Expiry.** `expires_unix` is when the approval stops being decidable or usable, checked by
//!   the conditions and by the gate. `expires_at` is the table's TTL attribute:
//!   [`KEEP_AFTER_EXPIRY_SECONDS`] later, so that a late retry is still told "expired" or
//!   "denied" rather than "unknown". DynamoDB deletes expired items lazily (within days), so
//!   reads treat an item past `expires_at` as gone themselves.
//! - **Size.** An item holds at most 400 KB. The arguments (the page shows them all, so they are
//!   kept whole, never cut) may take [`super::store::MAX_ARGUMENTS_BYTES`] of it; a call with
//!   more is refused before anything is written ([`StoreError::TooLarge`]), in `--dev` alike.
//! - **Retries and lost answers.** The SDK's own retries are off; throttling, timeouts and
//!   failed connections are retried with the gateway's [`Backoff`] ([`RETRIES`]). Each write
//!   carries a random token, so a retried write whose first answer was lost recognises its own
//!   earlier success in the item the failed condition returns instead of reporting a conflict.
//!   What still fails is [`StoreError::Unavailable`], counted by `switchboard_aws_errors_total`
//!   (service `dynamodb`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::store::{MAX_ARGUMENTS_BYTES, Store, StoreError};
use super::{Approval, Decision};
use crate::aws::{AwsErrors, Backoff, SdkFailure};

/// The sparse index of unsettled approvals by binding (hash `open_binding`, range
/// `created_unix`, keys only). Terraform creates it under this name.
pub const OPEN_INDEX: &str = "open_binding";

/// How long an item is kept after its approval expired (the TTL attribute `expires_at`).
pub const KEEP_AFTER_EXPIRY_SECONDS: u64 = 24 * 3600;

/// How failed requests are retried: 50 ms doubling up to 1 s, at most 6 attempts.
pub const RETRIES: Backoff = Backoff {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(1),
    max_attempts: 6,
};

/// The longest one request may take before it counts as failed (and is retried).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// How many unsettled approvals of one binding [`Store::open_for`] looks at, newest first.
const OPEN_CANDIDATES: i32 = 8;

/// DynamoDB's throttling code besides those [`SdkFailure::is_throttling`] knows.
const THROUGHPUT_EXCEEDED: &str = "ProvisionedThroughputExceededException";

/// Approvals in a DynamoDB table, shared by every replica.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    errors: AwsErrors,
}

/// One failed attempt: worth another, or final.
enum Failed {
    Retry(SdkFailure),
    Final(StoreError),
}

impl DynamoStore {
    /// A store on `table` with `config` (the gateway's SDK configuration); the SDK's own retries
    /// are off (see the module docs).
    pub fn new(
        config: &aws_config::SdkConfig,
        table: impl Into<String>,
        errors: AwsErrors,
    ) -> Self {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_dynamodb::Client::from_conf(conf),
            table: table.into(),
            errors,
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Runs `attempt` until it succeeds, fails for good, or [`RETRIES`] is spent.
    async fn retried<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failed>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match attempt(attempts).await {
                Ok(done) => return Ok(done),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Retry(failure)) => {
                    self.errors.count_failure("dynamodb", &failure);
                    match RETRIES.next_pause(attempts, Duration::MAX) {
                        Some(pause) => {
                            tracing::debug!(
                                what,
                                attempt = attempts,
                                code = failure.code_or_unknown(),
                                "approval store: retrying"
                            );
                            tokio::time::sleep(pause).await;
                        }
                        None => {
                            return Err(StoreError::Unavailable(format!(
                                "DynamoDB {what} on table {:?} failed {attempts} time(s): {}",
                                self.table,
                                failure.text(300)
                            )));
                        }
                    }
                }
            }
        }
    }

    /// Reads a failed request: retried when throttled or when no answer came; otherwise final.
    fn failed<E>(
        &self,
        what: &str,
        error: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> Failed
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let failure = SdkFailure::read(error);
        let transient = matches!(
            error,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ) || failure.is_throttling()
            || failure.code.as_deref() == Some(THROUGHPUT_EXCEEDED)
            || failure.status.is_some_and(|s| s >= 500);
        if transient {
            return Failed::Retry(failure);
        }
        self.errors.count_failure("dynamodb", &failure);
        Failed::Final(StoreError::Unavailable(format!(
            "DynamoDB {what} on table {:?}: {}: {}",
            self.table,
            failure.code_or_unknown(),
            failure.text(300)
        )))
    }

    /// A consistent read of one item, `None` when absent or past its TTL.
    async fn read(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let item = self
            .retried("GetItem", |_| async move {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("id", s(id))
                    .consistent_read(true)
                    .send()
                    .await
                    .map(|out| out.item)
                    .map_err(|e| self.failed("GetItem", &e))
            })
            .await?;
        match item {
            Some(item) if !past_ttl(&item, super::now_unix()) => from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    /// An `UpdateItem` of `id` under `condition` that also writes a new random token (`:token`)
    /// to `token_attribute`: the item as written, or, when the condition failed,
    /// [`StoreError::Conflict`] (the item exists) or [`StoreError::NotFound`], unless the item
    /// holds this write's own token (an earlier attempt whose answer was lost).
    async fn conditional_update(
        &self,
        what: &str,
        id: &str,
        update: &str,
        condition: &str,
        mut values: HashMap<String, AttributeValue>,
        token_attribute: &str,
    ) -> Result<Approval, StoreError> {
        let token = new_token();
        values.insert(":token".into(), s(&token));
        let token = token.as_str();
        let item = self
            .retried(what, |_| {
                let values = values.clone();
                async move {
                let sent = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("id", s(id))
                    .update_expression(update)
                    .condition_expression(condition)
                    .set_expression_attribute_values(Some(values))
                    .return_values(ReturnValue::AllNew)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match sent {
                    Ok(out) => Ok(out.attributes.unwrap_or_default()),
                    Err(e) => {
                        let old = e
                            .as_service_error()
                            .and_then(|se| match se {
                                aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item.clone()),
                                _ => None,
                            });
                        match old {
                            Some(Some(old)) if text(&old, token_attribute) == Some(token) => {
                                Ok(old)
                            }
                            Some(Some(_)) => Err(Failed::Final(StoreError::Conflict)),
                            Some(None) => Err(Failed::Final(StoreError::NotFound)),
                            None => Err(self.failed(what, &e)),
                        }
                    }
                }
                }
            })
            .await?;
        from_item(&item)
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    async fn create(&self, approval: &Approval) -> Result<(), StoreError> {
        let item = to_item(approval)?;
        self.retried("PutItem", |attempt| {
            let item = item.clone();
            async move {
                let sent = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(id)")
                    .send()
                    .await;
                match sent {
                    Ok(_) => Ok(()),
                    Err(e) if is_condition_failed_put(&e) => {
                        // Ids are 128 random bits: an item already there after a retry is this
                        // create's own first attempt, whose answer was lost.
                        if attempt > 1 {
                            Ok(())
                        } else {
                            Err(Failed::Final(StoreError::Conflict))
                        }
                    }
                    Err(e) => Err(self.failed("PutItem", &e)),
                }
            }
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.read(id).await
    }

    async fn open_for(&self, binding: &str) -> Result<Option<Approval>, StoreError> {
        let ids = self
            .retried("Query", |_| async move {
                self.client
                    .query()
                    .table_name(&self.table)
                    .index_name(OPEN_INDEX)
                    .key_condition_expression("open_binding = :b")
                    .expression_attribute_values(":b", s(binding))
                    .scan_index_forward(false)
                    .limit(OPEN_CANDIDATES)
                    .send()
                    .await
                    .map(|out| out.items.unwrap_or_default())
                    .map_err(|e| self.failed("Query", &e))
            })
            .await?;
        // The index may lag behind the table: each candidate is read again, consistently.
        for key in ids {
            let Some(id) = text(&key, "id") else { continue };
            if let Some(approval) = self.read(id).await?
                && approval.binding == binding
                && approval.settled_unix.is_none()
            {
                return Ok(Some(approval));
            }
        }
        Ok(None)
    }

    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        now_unix: u64,
    ) -> Result<Approval, StoreError> {
        let mut values = HashMap::from([
            (
                ":approved".to_owned(),
                AttributeValue::Bool(decision.approved),
            ),
            (":by".to_owned(), s(&decision.by)),
            (":at".to_owned(), n(decision.at_unix)),
            (":now".to_owned(), n(now_unix)),
        ]);
        let mut update =
            "SET approved = :approved, decided_by = :by, decided_unix = :at, decide_token = :token"
                .to_owned();
        if let Some(reason) = &decision.reason {
            values.insert(":reason".into(), s(reason));
            update.push_str(", decision_reason = :reason");
        }
        self.conditional_update(
            "UpdateItem (decide)",
            id,
            &update,
            "attribute_exists(id) AND attribute_not_exists(approved) AND expires_unix > :now",
            values,
            "decide_token",
        )
        .await
    }

    async fn settle(&self, id: &str, now_unix: u64) -> Result<Approval, StoreError> {
        let values = HashMap::from([
            (":now".to_owned(), n(now_unix)),
            (":denied".to_owned(), AttributeValue::Bool(false)),
        ]);
        self.conditional_update(
            "UpdateItem (settle)",
            id,
            "SET settled_unix = :now, settle_token = :token REMOVE open_binding",
            "attribute_exists(approved) AND attribute_not_exists(settled_unix) \
             AND (approved = :denied OR expires_unix > :now)",
            values,
            "settle_token",
        )
        .await
    }
}

fn is_condition_failed_put(
    e: &SdkError<
        aws_sdk_dynamodb::operation::put_item::PutItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    matches!(
        e.as_service_error(),
        Some(
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)
        )
    )
}

/// 128 random bits, hex: what one write puts in its token attribute.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The item of a new approval: undecided, unsettled, in the open index.
fn to_item(a: &Approval) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let arguments = serde_json::to_string(&a.arguments)
        .map_err(|e| StoreError::Unavailable(format!("the arguments do not serialize: {e}")))?;
    if arguments.len() > MAX_ARGUMENTS_BYTES {
        return Err(StoreError::TooLarge {
            bytes: arguments.len(),
            max: MAX_ARGUMENTS_BYTES,
        });
    }
    let mut item = HashMap::from([
        ("id".to_owned(), s(&a.id)),
        ("binding".to_owned(), s(&a.binding)),
        ("open_binding".to_owned(), s(&a.binding)),
        ("tool".to_owned(), s(&a.tool)),
        ("arguments".to_owned(), s(&arguments)),
        ("arguments_sha256".to_owned(), s(&a.arguments_sha256)),
        (
            "timeout_seconds".to_owned(),
            n(u64::from(a.timeout_seconds)),
        ),
        ("caller".to_owned(), s(&a.caller)),
        (
            "groups".to_owned(),
            AttributeValue::L(a.groups.iter().map(|g| s(g)).collect()),
        ),
        (
            "approver_may_be_caller".to_owned(),
            AttributeValue::Bool(a.approver_may_be_caller),
        ),
        ("created_unix".to_owned(), n(a.created_unix)),
        ("expires_unix".to_owned(), n(a.expires_unix)),
        (
            "expires_at".to_owned(),
            n(a.expires_unix.saturating_add(KEEP_AFTER_EXPIRY_SECONDS)),
        ),
    ]);
    if let Some(tenant) = &a.tenant {
        item.insert("tenant".into(), s(tenant));
    }
    Ok(item)
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn boolean(item: &HashMap<String, AttributeValue>, name: &str) -> Option<bool> {
    item.get(name)?.as_bool().ok().copied()
}

/// Whether DynamoDB may delete the item already (its TTL passed) though it has not yet.
fn past_ttl(item: &HashMap<String, AttributeValue>, now_unix: u64) -> bool {
    number(item, "expires_at").is_some_and(|at| now_unix >= at)
}

/// An approval from its item; an item without what every approval has is an error.
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Approval, StoreError> {
    let id = text(item, "id").unwrap_or("(no id)").to_owned();
    let missing = |field: &str| {
        StoreError::Unavailable(format!(
            "approval item {id:?} has no valid attribute {field:?}"
        ))
    };
    let required = |field: &str| {
        text(item, field)
            .map(str::to_owned)
            .ok_or_else(|| missing(field))
    };
    let arguments =
        serde_json::from_str(&required("arguments")?).map_err(|_| missing("arguments"))?;
    let groups = match item.get("groups").map(AttributeValue::as_l) {
        Some(Ok(list)) => list
            .iter()
            .map(|g| g.as_s().cloned().map_err(|_| missing("groups")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(missing("groups")),
    };
    let decision = match boolean(item, "approved") {
        None => None,
        Some(approved) => Some(Decision {
            approved,
            by: required("decided_by")?,
            at_unix: number(item, "decided_unix").ok_or_else(|| missing("decided_unix"))?,
            reason: text(item, "decision_reason").map(str::to_owned),
        }),
    };
    Ok(Approval {
        binding: required("binding")?,
        tool: required("tool")?,
        arguments,
        arguments_sha256: required("arguments_sha256")?,
        timeout_seconds: number(item, "timeout_seconds")
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| missing("timeout_seconds"))?,
        caller: required("caller")?,
        tenant: text(item, "tenant").map(str::to_owned),
        groups,
        approver_may_be_caller: boolean(item, "approver_may_be_caller")
            .ok_or_else(|| missing("approver_may_be_caller"))?,
        created_unix: number(item, "created_unix").ok_or_else(|| missing("created_unix"))?,
        expires_unix: number(item, "expires_unix").ok_or_else(|| missing("expires_unix"))?,
        decision,
        settled_unix: number(item, "settled_unix"),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval() -> Approval {
        Approval {
            id: "a1".into(),
            binding: "b".into(),
            tool: "apply".into(),
            arguments: serde_json::json!({"plan": "p", "n": [1, 2]}),
            arguments_sha256: "00".into(),
            timeout_seconds: 30,
            caller: "alice".into(),
            tenant: Some("acme".into()),
            groups: vec!["approvers".into(), "leads".into()],
            approver_may_be_caller: false,
            created_unix: 10,
            expires_unix: 100,
            decision: None,
            settled_unix: None,
        }
    }

    #[test]
    fn an_item_reads_back_as_the_approval_it_was_written_from() {
        let a = approval();
        let item = to_item(&a).expect("item");
        assert_eq!(from_item(&item).expect("approval"), a);
        assert_eq!(
            number(&item, "expires_at"),
            Some(100 + KEEP_AFTER_EXPIRY_SECONDS)
        );
        assert_eq!(text(&item, "open_binding"), Some("b"));
        let mut no_tenant = approval();
        no_tenant.tenant = None;
        no_tenant.groups = vec![];
        let item = to_item(&no_tenant).expect("item");
        assert!(!item.contains_key("tenant"));
        assert_eq!(from_item(&item).expect("approval"), no_tenant);
    }

    #[test]
    fn a_decided_and_settled_item_reads_back_with_its_decision() {
        let mut item = to_item(&approval()).expect("item");
        item.insert("approved".into(), AttributeValue::Bool(false));
        item.insert("decided_by".into(), s("bob"));
        item.insert("decided_unix".into(), n(20));
        item.insert("decision_reason".into(), s("not today"));
        item.insert("settled_unix".into(), n(30));
        let a = from_item(&item).expect("approval");
        assert_eq!(
            a.decision,
            Some(Decision {
                approved: false,
                by: "bob".into(),
                at_unix: 20,
                reason: Some("not today".into()),
            })
        );
        assert_eq!(a.settled_unix, Some(30));
    }

    #[test]
    fn an_item_missing_a_field_is_an_error_naming_it() {
        let mut item = to_item(&approval()).expect("item");
        item.remove("caller");
        let err = from_item(&item).expect_err("refused");
        assert!(err.to_string().contains("\"caller\""), "{err}");
    }

    #[test]
    fn arguments_over_the_limit_are_refused_before_anything_is_written() {
        let mut a = approval();
        a.arguments = serde_json::json!({"blob": "x".repeat(MAX_ARGUMENTS_BYTES)});
        assert!(matches!(
            to_item(&a),
            Err(StoreError::TooLarge {
                max: MAX_ARGUMENTS_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn an_item_past_its_ttl_is_gone_though_dynamodb_has_not_deleted_it() {
        let item = to_item(&approval()).expect("item");
        let ttl = 100 + KEEP_AFTER_EXPIRY_SECONDS;
        assert!(!past_ttl(&item, ttl - 1));
        assert!(past_ttl(&item, ttl));
    }
}
