output "arn" {
  description = "The key's ARN: the kms_key_id of every log group of the deployment."
  value       = aws_kms_key.logs.arn
}

output "key_id" {
  description = "The key's id."
  value       = aws_kms_key.logs.key_id
}
