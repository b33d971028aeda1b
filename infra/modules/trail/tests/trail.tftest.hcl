# `terraform test` of the trail module, offline (a mocked AWS provider): log-file validation on, the
# trail's own key, data events for exactly the given buckets and functions, a key policy that gives
# the account no create or grant right, a bucket only this trail writes; and the inputs it refuses.
# Run by tests/infra/run.sh.
mock_provider "aws" {
  # The key's and the bucket's ARNs are compared at plan: known here.
  override_during = plan
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-2222-2222-222222222222" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "sbtest-trail-123456789012-eu-west-1"
      arn = "arn:aws:s3:::sbtest-trail-123456789012-eu-west-1"
    }
  }
}

variables {
  name_prefix = "sbtest"
  s3_bucket_arns = [
    "arn:aws:s3:::switchboard-example-files",
    "arn:aws:s3:::switchboard-example-tfstate",
    "arn:aws:s3:::sbtest-invocations-123456789012-eu-west-1",
    "arn:aws:s3:::switchboard-example-files", # named twice: selected once
  ]
  lambda_function_arns = [
    "arn:aws:lambda:eu-west-1:123456789012:function:sbtest-echo",
    "arn:aws:lambda:eu-west-1:123456789012:function:sbtest-tenant-files",
  ]
}

run "the_trail_validates_its_log_files_and_encrypts_them_with_its_own_key" {
  command = plan
  assert {
    condition     = aws_cloudtrail.this.enable_log_file_validation == true
    error_message = "log-file validation is off: a deleted or altered log file would go unnoticed"
  }
  assert {
    condition     = aws_cloudtrail.this.kms_key_id == aws_kms_key.trail.arn && aws_kms_key.trail.enable_key_rotation
    error_message = "the trail is not encrypted with the module's own (rotated) key"
  }
  assert {
    condition     = aws_cloudtrail.this.is_multi_region_trail && aws_cloudtrail.this.include_global_service_events && aws_cloudtrail.this.enable_logging
    error_message = "the trail does not log in every region (S3 data events reach trails of the bucket's region)"
  }
  assert {
    condition     = aws_cloudtrail.this.s3_bucket_name == aws_s3_bucket.trail.id && aws_cloudtrail.this.name == "sbtest-trail"
    error_message = "the trail does not deliver to the module's own bucket"
  }
}

run "data_events_are_selected_for_exactly_the_given_buckets_and_functions" {
  command = plan
  assert {
    condition     = length(aws_cloudtrail.this.advanced_event_selector) == 3 && length(aws_cloudtrail.this.event_selector) == 0
    error_message = "expected three advanced selectors (management, S3 objects, Lambda) and no basic one"
  }
  assert {
    condition = jsonencode([for f in aws_cloudtrail.this.advanced_event_selector[0].field_selector : { field = f.field, equals = f.equals }]) == jsonencode([
      { field = "eventCategory", equals = ["Management"] },
    ])
    error_message = "the first selector is not management events alone (read and write)"
  }
  assert {
    condition = jsonencode({
      for f in aws_cloudtrail.this.advanced_event_selector[1].field_selector : f.field => f.field == "resources.ARN" ? f.starts_with : f.equals
      }) == jsonencode({
      "eventCategory"  = ["Data"]
      "resources.type" = ["AWS::S3::Object"]
      "resources.ARN" = [
        "arn:aws:s3:::sbtest-invocations-123456789012-eu-west-1/",
        "arn:aws:s3:::switchboard-example-files/",
        "arn:aws:s3:::switchboard-example-tfstate/",
      ]
    })
    error_message = "S3 data events are not every object (prefix ending in /) of exactly the given buckets, once each: ${jsonencode(aws_cloudtrail.this.advanced_event_selector[1])}"
  }
  assert {
    # No readOnly field: reads and writes both.
    condition     = !contains([for f in aws_cloudtrail.this.advanced_event_selector[1].field_selector : f.field], "readOnly")
    error_message = "S3 data events are limited to reads or to writes"
  }
  assert {
    condition = jsonencode({
      for f in aws_cloudtrail.this.advanced_event_selector[2].field_selector : f.field => f.equals
      }) == jsonencode({
      "eventCategory"  = ["Data"]
      "resources.type" = ["AWS::Lambda::Function"]
      "resources.ARN" = [
        "arn:aws:lambda:eu-west-1:123456789012:function:sbtest-echo",
        "arn:aws:lambda:eu-west-1:123456789012:function:sbtest-tenant-files",
      ]
    })
    error_message = "Lambda data events are not exactly the given functions: ${jsonencode(aws_cloudtrail.this.advanced_event_selector[2])}"
  }
  assert {
    condition = alltrue([
      for s in aws_cloudtrail.this.advanced_event_selector : alltrue([
        for f in s.field_selector : length(concat(coalesce(f.ends_with, []), coalesce(f.not_equals, []), coalesce(f.not_starts_with, []), coalesce(f.not_ends_with, []))) == 0
      ])
    ])
    error_message = "a selector uses an operator besides equals and starts_with"
  }
}

run "without_management_events_only_the_data_events_are_selected" {
  command = plan
  variables {
    management_events    = false
    lambda_function_arns = []
  }
  assert {
    condition     = length(aws_cloudtrail.this.advanced_event_selector) == 1 && one([for f in aws_cloudtrail.this.advanced_event_selector[0].field_selector : f.equals if f.field == "resources.type"])[0] == "AWS::S3::Object"
    error_message = "expected the S3 selector alone: ${jsonencode(aws_cloudtrail.this.advanced_event_selector)}"
  }
}

run "the_key_policy_gives_the_account_no_create_and_no_grant_and_cloudtrail_only_this_trail" {
  command = plan
  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.trail.policy).Statement : alltrue([
        for a in flatten([s.Action]) : !startswith(lower(a), "kms:create") && lower(a) != "kms:*"
      ])
    ])
    error_message = "the key policy allows kms:Create* (CreateGrant among them) or kms:*"
  }
  assert {
    # No wildcard that could match CreateGrant either ("kms:C*", "kms:*Grant").
    condition = alltrue([
      for s in jsondecode(aws_kms_key.trail.policy).Statement : alltrue([for a in flatten([s.Action]) : !strcontains(a, "*")])
    ])
    error_message = "the key policy allows a wildcard action"
  }
  assert {
    condition = [
      for s in jsondecode(aws_kms_key.trail.policy).Statement : s.Sid if try(s.Principal.Service, "") == "cloudtrail.amazonaws.com"
      ] == ["OnlyThisTrailEncryptsItsLogFiles", "ThisTrailDescribesTheKey"] && alltrue([
        for s in jsondecode(aws_kms_key.trail.policy).Statement :
        s.Condition.StringEquals["aws:SourceArn"] == "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail"
        if try(s.Principal.Service, "") == "cloudtrail.amazonaws.com"
    ])
    error_message = "CloudTrail may use the key for something other than this trail"
  }
  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.trail.policy).Statement : s if s.Sid == "OnlyThisTrailEncryptsItsLogFiles"
      ]).Condition.StringEquals["kms:EncryptionContext:aws:cloudtrail:arn"] == "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail" && one([
      for s in jsondecode(aws_kms_key.trail.policy).Statement : s if s.Sid == "OnlyThisTrailEncryptsItsLogFiles"
    ]).Action == "kms:GenerateDataKey"
    error_message = "CloudTrail's data keys are not bound to this trail's encryption context"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.trail.policy).Statement : (
        !contains(flatten([s.Action]), "kms:Decrypt") ||
        try(s.Condition.StringEquals["kms:EncryptionContext:aws:cloudtrail:arn"], "") == "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail"
      )
    ])
    error_message = "the account may decrypt with the key outside this trail's log files"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.trail.policy).Statement :
      s.Effect == "Allow" && contains(["cloudtrail.amazonaws.com", "arn:aws:iam::123456789012:root"], try(s.Principal.Service, s.Principal.AWS))
    ])
    error_message = "the key policy names a principal other than this account and CloudTrail"
  }
}

run "the_bucket_lets_only_this_trail_write_and_only_over_tls" {
  command = plan
  assert {
    condition = [
      for s in jsondecode(aws_s3_bucket_policy.trail.policy).Statement : {
        sid = s.Sid, principal = s.Principal, action = s.Action, resource = s.Resource, source = s.Condition.StringEquals["aws:SourceArn"]
      } if s.Effect == "Allow"
      ] == [
      {
        sid      = "ThisTrailChecksTheBucketAcl", principal = { Service = "cloudtrail.amazonaws.com" }, action = "s3:GetBucketAcl",
        resource = "arn:aws:s3:::sbtest-trail-123456789012-eu-west-1", source = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail"
      },
      {
        sid      = "ThisTrailWritesItsLogFiles", principal = { Service = "cloudtrail.amazonaws.com" }, action = "s3:PutObject",
        resource = "arn:aws:s3:::sbtest-trail-123456789012-eu-west-1/AWSLogs/123456789012/*", source = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail"
      },
    ]
    error_message = "the bucket policy allows something other than this trail's ACL check and its writes under AWSLogs/<account>/"
  }
  assert {
    condition = one([
      for s in jsondecode(aws_s3_bucket_policy.trail.policy).Statement : s if s.Sid == "ThisTrailWritesItsLogFiles"
    ]).Condition.StringEquals["s3:x-amz-acl"] == "bucket-owner-full-control"
    error_message = "the trail's writes do not require bucket-owner-full-control"
  }
  assert {
    condition = one([
      for s in jsondecode(aws_s3_bucket_policy.trail.policy).Statement : s if s.Sid == "NoOtherWriter"
      ]) == {
      Sid       = "NoOtherWriter", Effect = "Deny", Principal = "*", Action = "s3:PutObject",
      Resource  = "arn:aws:s3:::sbtest-trail-123456789012-eu-west-1/*",
      Condition = { StringNotEquals = { "aws:SourceArn" = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/sbtest-trail" } }
    }
    error_message = "writes by anyone but this trail are not denied (an IAM grant could add or overwrite a log file)"
  }
  assert {
    condition = one([
      for s in jsondecode(aws_s3_bucket_policy.trail.policy).Statement : s if s.Sid == "TlsOnly"
    ]).Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "requests without TLS are not denied"
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.trail.block_public_acls && aws_s3_bucket_public_access_block.trail.block_public_policy
      && aws_s3_bucket_public_access_block.trail.ignore_public_acls && aws_s3_bucket_public_access_block.trail.restrict_public_buckets
      && one(aws_s3_bucket_ownership_controls.trail.rule).object_ownership == "BucketOwnerEnforced"
    )
    error_message = "the bucket does not block public access or does not enforce bucket ownership"
  }
}

run "log_files_expire_after_the_given_days" {
  command = plan
  variables {
    log_expiry_days = 90
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.trail.rule : one(r.expiration).days if r.id == "expire-log-files"]) == 90
    error_message = "log files do not expire after log_expiry_days"
  }
}

run "an_object_arn_is_refused_as_a_bucket" {
  command = plan
  variables {
    s3_bucket_arns = ["arn:aws:s3:::switchboard-example-files/tenant-a/*"]
  }
  expect_failures = [var.s3_bucket_arns]
}

run "a_wildcard_bucket_is_refused" {
  command = plan
  variables {
    s3_bucket_arns = ["arn:aws:s3:::switchboard-*"]
  }
  expect_failures = [var.s3_bucket_arns]
}

run "a_qualified_function_arn_is_refused" {
  command = plan
  variables {
    lambda_function_arns = ["arn:aws:lambda:eu-west-1:123456789012:function:sbtest-echo:live"]
  }
  expect_failures = [var.lambda_function_arns]
}

run "the_trails_own_bucket_is_refused" {
  command = plan
  variables {
    s3_bucket_arns = ["arn:aws:s3:::sbtest-trail-123456789012-eu-west-1"]
  }
  expect_failures = [aws_cloudtrail.this]
}

run "a_trail_that_selects_nothing_is_refused" {
  command = plan
  variables {
    management_events    = false
    s3_bucket_arns       = []
    lambda_function_arns = []
  }
  expect_failures = [aws_cloudtrail.this]
}
