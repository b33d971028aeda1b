output "arn" {
  description = "The work role's ARN (what the bindings' work_role_arn names)."
  value       = aws_iam_role.this.arn
}

output "name" {
  description = "The work role's name."
  value       = aws_iam_role.this.name
}
