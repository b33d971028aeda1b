//! Tests of the project checks, the provider settings and the plan summary.

use super::*;

fn change(address: &str, kind: &str, actions: &[&str], after: Value) -> Value {
    json!({"address": address, "mode": "managed", "type": kind,
           "change": {"actions": actions, "after": after}})
}

#[test]
fn counts_by_type_and_flags_what_a_reviewer_must_see() {
    let plan = json!({"resource_changes": [
        change("aws_s3_bucket.a", "aws_s3_bucket", &["create"], json!({})),
        change("aws_s3_bucket.b", "aws_s3_bucket", &["no-op"], json!({})),
        change("aws_s3_bucket.c", "aws_s3_bucket", &["delete"], Value::Null),
        change("aws_iam_policy.p", "aws_iam_policy", &["update"], json!({})),
        change("aws_instance.i", "aws_instance", &["delete", "create"], json!({})),
        change("aws_security_group.w", "aws_security_group", &["create"],
               json!({"ingress": [{"cidr_blocks": ["0.0.0.0/0"], "from_port": 22, "to_port": 22}]})),
        change("aws_s3_bucket_policy.p", "aws_s3_bucket_policy", &["create"],
               json!({"policy": "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\"}]}"})),
        {"address": "data.aws_iam_policy_document.d", "mode": "data",
         "type": "aws_iam_policy_document", "change": {"actions": ["read"]}},
    ]});
    let s = summarize(&plan).expect("works");
    assert_eq!(
        s.by_type["aws_s3_bucket"],
        Counts {
            create: 1,
            update: 0,
            delete: 1,
            replace: 0
        }
    );
    assert_eq!(s.by_type["aws_instance"].replace, 1);
    assert!(!s.by_type.contains_key("aws_iam_policy_document"));
    let kinds: Vec<(&str, &str)> = s
        .flags
        .iter()
        .map(|f| (f.kind, f.address.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("delete", "aws_s3_bucket.c"),
            ("iam", "aws_iam_policy.p"),
            ("replace", "aws_instance.i"),
            ("security_group", "aws_security_group.w"),
            ("public", "aws_security_group.w"),
            ("public", "aws_s3_bucket_policy.p"),
        ]
    );
    assert!(
        s.flags[4].reason.contains("0.0.0.0/0 on ports 22-22"),
        "{:?}",
        s.flags[4]
    );
    let totals = s.totals();
    assert_eq!(
        (totals.create, totals.update, totals.delete, totals.replace),
        (3, 1, 1, 1)
    );
}

#[test]
fn a_private_security_group_and_a_conditioned_policy_are_not_public() {
    let plan = json!({"resource_changes": [
        change("aws_security_group.w", "aws_security_group", &["create"],
               json!({"ingress": [{"cidr_blocks": ["10.0.0.0/16"]}]})),
        change("aws_sqs_queue_policy.q", "aws_sqs_queue_policy", &["create"],
               json!({"policy": "{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Condition\":{\"StringEquals\":{\"aws:SourceAccount\":\"1\"}}}}"})),
        change("aws_s3_bucket_public_access_block.b", "aws_s3_bucket_public_access_block",
               &["create"], json!({"block_public_acls": true, "block_public_policy": true,
                                   "ignore_public_acls": true, "restrict_public_buckets": true})),
    ]});
    let s = summarize(&plan).expect("works");
    assert!(s.flags.iter().all(|f| f.kind != "public"), "{:?}", s.flags);
}

#[test]
fn names_and_variables_are_checked() {
    for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
        assert!(check_project_name(bad).is_err(), "{bad:?}");
    }
    check_project_name("storefront-2.v1_x").expect("works");
    assert!(variables(Some(&json!({"ok": "x", "n": 1, "b": true}))).is_ok());
    for bad in [
        json!({"1x": "a"}),
        json!({"a b": "a"}),
        json!({"x": ["list"]}),
        json!({"x": {"o": 1}}),
        json!({"x": null}),
        json!({"x": "y".repeat(MAX_VARIABLE_CHARS + 1)}),
        json!(["not", "an", "object"]),
    ] {
        assert!(variables(Some(&bad)).is_err(), "{bad}");
    }
}

#[test]
fn the_missing_providers_are_named_from_terraforms_wrapped_message() {
    let said = "Error: Failed to query available provider packages\n\nCould not retrieve the \
                list of available versions for provider\nhashicorp/random: provider \
                registry.terraform.io/hashicorp/random was not\nfound in any of the search \
                locations\n";
    assert_eq!(
        missing_providers(said),
        vec!["registry.terraform.io/hashicorp/random"]
    );
    assert!(missing_providers("Error: something else").is_empty());
}

#[test]
fn a_project_is_found_only_inside_the_tenants_folder() {
    let dir = tempfile::tempdir().expect("works");
    let tenant = dir.path().join("acme");
    std::fs::create_dir_all(tenant.join("projects/web")).expect("works");
    std::fs::create_dir_all(dir.path().join("globex/projects/ledger")).expect("works");
    std::os::unix::fs::symlink(
        dir.path().join("globex/projects/ledger"),
        tenant.join("projects/ledger"),
    )
    .expect("works");
    std::fs::write(tenant.join("projects/file"), "x").expect("works");
    assert!(project_dir(&tenant, "web").is_ok());
    for name in ["ledger", "file", "missing"] {
        let e = project_dir(&tenant, name).expect_err("fails");
        assert!(
            e.to_string().contains("not found for this tenant"),
            "{name}: {e}"
        );
    }
}

#[test]
fn provider_settings_override_the_projects_block_or_stand_alone() {
    let dir = tempfile::tempdir().expect("works");
    std::fs::write(dir.path().join("main.tf"), "resource \"x\" \"y\" {}\n").expect("works");
    write_provider_settings(dir.path(), true).expect("works");
    let own = std::fs::read_to_string(dir.path().join("switchboard_provider.tf")).expect("works");
    assert!(own.contains("max_retries = 1") && own.contains("skip_credentials_validation"));

    let dir = tempfile::tempdir().expect("works");
    std::fs::write(
        dir.path().join("p.tf"),
        "provider \"aws\"{\n  region = \"x\"\n}\n",
    )
    .expect("works");
    write_provider_settings(dir.path(), false).expect("works");
    let merged = std::fs::read_to_string(dir.path().join("switchboard_provider_override.tf"))
        .expect("works");
    assert!(merged.contains("max_retries = 1") && !merged.contains("offline"));
}

#[test]
fn long_plans_are_cut_on_a_character_boundary() {
    let text = "é".repeat(10);
    let (cut, truncated) = cut_at(&text, 5);
    assert!(truncated);
    assert_eq!(cut, "éé");
    assert_eq!(cut_at("short", 10), ("short", false));
}
