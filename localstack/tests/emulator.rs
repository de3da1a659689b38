//! Against the emulator at AWS_ENDPOINT_URL (`make test` starts it). Every test uses its own,
//! uniquely named tables, so they run in parallel against one shared moto server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_sdk_dynamodb::types::{
    IndexStatus, KeyType, ProjectionType, StreamViewType, TableStatus, TimeToLiveStatus,
};
use localstack::Error;
use localstack::provision::{Outcome, create_table, provision_all, provision_tables};
use localstack::template::Template;
use localstack::testing::{emulator_client, fresh_table};

#[tokio::test]
async fn fresh_table_is_the_template_table() {
    let (client, name) = fresh_table("lstest").await;
    assert!(name.starts_with("lstest-"), "{name}");

    let described = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("DescribeTable");
    let table = described.table().expect("a table");
    assert_eq!(table.table_status(), Some(&TableStatus::Active));

    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(keys, [("PK", KeyType::Hash), ("SK", KeyType::Range)]);

    let mut gsis = table.global_secondary_indexes().to_vec();
    gsis.sort_by(|a, b| a.index_name().cmp(&b.index_name()));
    assert_eq!(gsis.len(), 2, "{gsis:#?}");
    for (gsi, name, projection, included) in [
        (&gsis[0], "GSI1", ProjectionType::All, Vec::new()),
        (
            &gsis[1],
            "GSI2",
            ProjectionType::Include,
            vec!["workflow_id".to_string()],
        ),
    ] {
        assert_eq!(gsi.index_name(), Some(name));
        let gsi_keys: Vec<_> = gsi
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
            .collect();
        assert_eq!(
            gsi_keys,
            [
                (format!("{name}PK"), KeyType::Hash),
                (format!("{name}SK"), KeyType::Range)
            ]
        );
        let p = gsi.projection().expect("a projection");
        assert_eq!(p.projection_type(), Some(&projection));
        assert_eq!(p.non_key_attributes(), included.as_slice());
        assert!(
            gsi.index_status().is_none_or(|s| *s == IndexStatus::Active),
            "{gsi:?}"
        );
    }

    let stream = table
        .stream_specification()
        .expect("a stream specification");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert!(table.latest_stream_arn().is_some(), "{table:?}");

    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

#[tokio::test]
async fn two_fresh_tables_have_different_names() {
    let (_, first) = fresh_table("lstest").await;
    let (_, second) = fresh_table("lstest").await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn provision_all_twice_reports_the_existing_table() {
    let client = emulator_client().await;
    let mut template = Template::load_default().expect("template");
    let unique = format!("ProvisionTest-{}", ulid::Ulid::new());
    template
        .rename_resource("WorkflowTable", &unique)
        .expect("rename");

    let first = provision_all(&client, &template).await.expect("first run");
    assert_eq!(first, [format!("table {unique}: created")]);

    let second = provision_tables(&client, &template)
        .await
        .expect("second run does not fail");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].table, unique);
    assert_eq!(second[0].outcome, Outcome::AlreadyExists);

    let third = provision_all(&client, &template).await.expect("third run");
    assert_eq!(
        third,
        [format!("table {unique}: already exists (left as it is)")]
    );

    // Named by the logical id, and really there.
    let described = client
        .describe_table()
        .table_name(&unique)
        .send()
        .await
        .expect("DescribeTable");
    assert_eq!(
        described.table().and_then(|t| t.table_name()),
        Some(unique.as_str())
    );
}

#[tokio::test]
async fn create_table_reports_an_existing_table_as_already_exists() {
    let (client, name) = fresh_table("lstest").await;
    let template = Template::load_default().expect("template");
    let spec = &template.tables()[0];
    let err = create_table(&client, spec, &name)
        .await
        .expect_err("the table exists");
    assert!(err.is_already_exists(), "{err}");
    assert!(
        matches!(&err, Error::AlreadyExists { table } if *table == name),
        "{err:?}"
    );
}

#[tokio::test]
async fn create_table_passes_on_the_emulator_message() {
    let client = emulator_client().await;
    let template = Template::load_default().expect("template");
    let mut spec = template.tables()[0].clone();
    // The template's own checks forbid this; build it by hand to get an error from DynamoDB.
    spec.global_secondary_indexes.clear();
    let name = format!("lstest-{}", ulid::Ulid::new());
    let err = create_table(&client, &spec, &name)
        .await
        .expect_err("unused attribute definitions are rejected");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::Aws {
                operation: "CreateTable",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains(&name)
            && message.contains("ValidationException: ")
            && message.contains("AttributeDefinitions"),
        "{message}"
    );
}

/// `localstack/moto_server.py` rolls a cancelled transaction back item by item (moto copied
/// whole tables): all or nothing, one cancellation reason per item, updates undone in place.
#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_as_it_was() {
    use aws_sdk_dynamodb::types::{
        AttributeValue as V, ConditionCheck, Put, TransactWriteItem, Update,
    };
    let (client, table) = fresh_table("lstx").await;
    let key = |pk: &str| {
        std::collections::HashMap::from([
            ("PK".to_string(), V::S(pk.into())),
            ("SK".to_string(), V::S("META".into())),
        ])
    };
    let mut existing = key("EXISTING");
    existing.insert("version".into(), V::N("1".into()));
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(existing))
        .send()
        .await
        .expect("PutItem");
    let put_new = Put::builder()
        .table_name(&table)
        .set_item(Some(key("NEW")))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .expect("put");
    let bump = Update::builder()
        .table_name(&table)
        .set_key(Some(key("EXISTING")))
        .update_expression("SET version = version + :one")
        .expression_attribute_values(":one", V::N("1".into()))
        .build()
        .expect("update");
    let err = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put_new).build())
        .transact_items(TransactWriteItem::builder().update(bump.clone()).build())
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&table)
                        .set_key(Some(key("OTHER")))
                        .condition_expression("attribute_exists(PK)")
                        .build()
                        .expect("condition check"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("the last condition fails");
    let reasons: Vec<_> = err
        .as_service_error()
        .and_then(|e| match e {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
            _ => None,
        })
        .map(|e| {
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("").to_string())
                .collect()
        })
        .expect("TransactionCanceledException");
    assert_eq!(reasons, ["None", "None", "ConditionalCheckFailed"]);
    let get = |pk: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .get_item()
                .table_name(table)
                .set_key(Some(key(pk)))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item
        }
    };
    assert!(get("NEW").await.is_none(), "the new item was taken back");
    let after = get("EXISTING").await.expect("still there");
    assert_eq!(after["version"], V::N("1".into()), "the update was undone");

    // The same items in a transaction that passes are all written.
    client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .set_item(Some(key("NEW")))
                        .build()
                        .expect("put"),
                )
                .build(),
        )
        .transact_items(TransactWriteItem::builder().update(bump).build())
        .send()
        .await
        .expect("TransactWriteItems");
    assert!(get("NEW").await.is_some());
    assert_eq!(
        get("EXISTING").await.expect("there")["version"],
        V::N("2".into())
    );
}
