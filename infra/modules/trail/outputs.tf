output "trail_arn" {
  description = "The trail's ARN (the aws:SourceArn its bucket and key policies require)."
  value       = aws_cloudtrail.this.arn
}

output "bucket_name" {
  description = "The bucket the trail delivers its log and digest files to, under AWSLogs/<account>/."
  value       = aws_s3_bucket.trail.id
}

output "kms_key_arn" {
  description = "The KMS key the trail encrypts its log files with."
  value       = aws_kms_key.trail.arn
}

output "s3_object_arn_prefixes" {
  description = "The object ARN prefixes whose S3 data events the trail selects (one per bucket, ending in /)."
  value       = local.s3_object_prefixes
}

output "lambda_function_arns" {
  description = "The functions whose Invoke data events the trail selects."
  value       = local.function_arns
}
