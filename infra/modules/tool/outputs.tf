output "name" {
  description = "The tool's catalog name."
  value       = local.name
}

output "backend" {
  description = "lambda or fargate."
  value       = local.backend
}

output "function_arn" {
  description = "The Lambda function's ARN (null for fargate tools)."
  value       = one(aws_lambda_function.this[*].arn)
}

output "task_definition_arn" {
  description = "The task definition's ARN, with revision (null for lambda tools)."
  value       = one(aws_ecs_task_definition.this[*].arn)
}

output "execution_role_arn" {
  description = "The execution identity (Lambda execution role or ECS task execution role)."
  value       = aws_iam_role.execution.arn
}

output "work_role_arn" {
  description = "The role the gateway assumes per call (null when the catalog gives the tool no permissions)."
  value       = one(module.work_role[*].arn)
}

output "security_group_id" {
  description = "The tool's own security group."
  value       = aws_security_group.this.id
}

output "log_group_name" {
  description = "The tool's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "ecr_repository_arns" {
  description = "The ECR repository the task pulls from (empty for lambda tools)."
  value       = local.ecr_repository_arns
}

output "endpoints" {
  description = "Every endpoint the unit's security group reaches (declared plus, for Fargate, the platform's)."
  value       = sort(tolist(local.endpoints))
}

output "binding" {
  description = "What the gateway needs to dispatch to this tool (one entry of switchboard_bindings.tools)."
  value = merge(
    {
      backend         = local.backend
      work_role_arn   = one(module.work_role[*].arn)
      log_group       = aws_cloudwatch_log_group.this.name
      subnets         = var.subnet_ids
      security_groups = [aws_security_group.this.id]
      session_tags    = local.session_tags
    },
    local.is_lambda ? { function_arn = one(aws_lambda_function.this[*].arn) } : {},
    local.is_fargate ? {
      task_definition_arn = one(aws_ecs_task_definition.this[*].arn)
      container_name      = "tool"
    } : {}
  )
}
