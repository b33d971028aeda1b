// The claims of examples/catalog.aws.yaml, written by hand from what the catalog promises (never
// derived from the documents they are decided over): used by session.test.mjs (the session policy
// alone) and deployed.test.mjs (the deployed work roles, boundary, endpoints and session policy).
// For each tool with permissions: its timeout and what its own tenant (acme) may do; each request
// is also asked for another tenant (globex), where `{tenant}` appears, and after the deadline.
// `{account}` is the account the documents are decided in. A tool with `approval: true` asks for
// approval, so its calls' credentials carry an `approver` tag; a request marked
// `requires_approval` is granted by a permission with `require_approval` and must also be refused
// without that tag, or with it empty.
export const CLAIMS = {
  state_validate: {
    timeout_seconds: 30,
    allowed: [{ action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-tfstate/{tenant}/states/clean.tfstate' }]
  },
  terraform_plan: {
    timeout_seconds: 600,
    allowed: [
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::switchboard-example-tfstate', prefix: '{tenant}/projects/storefront/' },
      { action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-tfstate/{tenant}/projects/storefront/main.tf' }
    ],
    // Its grant is the projects, not the tenant's states.
    refused: [{ action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-tfstate/{tenant}/states/clean.tfstate' }]
  },
  'tenant-files': {
    timeout_seconds: 30,
    allowed: [
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::switchboard-example-files', prefix: '{tenant}/reports/' },
      { action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/reports/q3.csv' },
      { action: 's3:PutObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/reports/q4.csv' }
    ],
    refused: [{ action: 's3:DeleteObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/reports/q3.csv' }]
  },
  secret_lookup: {
    timeout_seconds: 15,
    allowed: [
      { action: 'secretsmanager:DescribeSecret', resource: 'arn:aws:secretsmanager:us-east-1:{account}:secret:switchboard/{tenant}/db/password-AbCdEf' }
    ],
    refused: [
      { action: 'secretsmanager:GetSecretValue', resource: 'arn:aws:secretsmanager:us-east-1:{account}:secret:switchboard/{tenant}/db/password-AbCdEf' }
    ]
  },
  'tenant-publish': {
    timeout_seconds: 30,
    approval: true,
    allowed: [
      { action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/drafts/report.md' },
      { action: 's3:PutObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/published/report.md', requires_approval: true }
    ],
    // Its write is the published folder, not the drafts.
    refused: [{ action: 's3:PutObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/drafts/report.md' }]
  }
}
// Who approved a call, as its `approver` session tag names them.
export const APPROVER = 'bob@example.com'
// Asked of every tool: nothing outside its grant, however wide the work role.
export const NEVER = [
  { action: 'iam:CreateUser', resource: 'arn:aws:iam::{account}:user/probe' },
  { action: 'sts:AssumeRole', resource: 'arn:aws:iam::{account}:role/switchboard-gateway' },
  { action: 's3:PutBucketPolicy', resource: 'arn:aws:s3:::switchboard-example-tfstate' }
]

