# The one place Terraform reads the catalog. It resolves the catalog's defaults exactly as the
# gateway does (gateway/src/catalog/types.rs) and derives what the other modules need; it creates
# nothing. Tools with backend `local` run on the gateway's machine: no unit is deployed for them,
# but one with permissions gets a work role (local_work_roles), so that it runs with credentials
# minted per call exactly as a lambda or fargate tool does.

locals {
  raw = yamldecode(file(var.catalog_path))
  dir = dirname(var.catalog_path)

  default_session_tags = ["tool", "tenant", "principal", "invocation"]
  # `approver` (who approved the call) only for a tool with `approval`, never by default.
  known_session_tags = concat(local.default_session_tags, ["approver"])
  known_endpoints    = ["s3", "sts", "logs", "kms", "ecr.api", "ecr.dkr", "secretsmanager"]

  # A Fargate task pulls its image, ships its logs and fetches its invocation through its own
  # network interface: it always reaches ECR, S3 (image layers, presigned hand-over URLs) and
  # CloudWatch Logs. A Lambda function's platform traffic does not cross the VPC.
  platform_endpoints = {
    lambda  = []
    fargate = ["s3", "ecr.api", "ecr.dkr", "logs"]
  }

  aws_tools = [for t in local.raw.tools : t if contains(["lambda", "fargate"], t.backend)]

  # Fargate images: a reference without a registry host names a repository in this account's
  # ECR in this region (the private subnets reach no other registry).
  images = {
    for t in local.aws_tools : t.name => (
      length(regexall("^[^/]+[.:][^/]*/", t.fargate.image)) > 0
      ? t.fargate.image
      : "${var.account_id}.dkr.ecr.${var.region}.amazonaws.com/${t.fargate.image}"
    ) if t.backend == "fargate"
  }
  # Each Fargate tool's start window (gateway/src/catalog/types.rs: FargateUnit); the gateway alone
  # uses it, Terraform only refuses what the gateway's loader would.
  start_timeouts = {
    for t in local.aws_tools : t.name => try(t.fargate.start_timeout_seconds, 120) if t.backend == "fargate"
  }
  ecr_repository_arns = {
    for name, image in local.images : name => one([
      for m in regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", image) :
      "arn:${var.partition}:ecr:${m[1]}:${m[0]}:repository/${m[2]}"
    ])
  }

  tools = {
    for t in local.aws_tools : t.name => {
      name                 = t.name
      backend              = t.backend
      timeout_seconds      = try(t.timeout_seconds, 30)
      memory_mb            = try(t.memory_mb, 256)
      ephemeral_storage_mb = try(t.ephemeral_storage_mb, 512)
      declared_endpoints   = sort(distinct(try(t.endpoints, [])))
      reach                = sort(distinct(concat(try(t.endpoints, []), local.platform_endpoints[t.backend])))
      session_tags         = try(t.session_tags, local.default_session_tags)
      statements           = local.statements_of[t.name]
      lambda = t.backend != "lambda" ? null : {
        package_path = "${local.dir}/${t.lambda.package}"
        architecture = try(t.lambda.architecture, "x86_64")
      }
      fargate = t.backend != "fargate" ? null : {
        image              = local.images[t.name]
        ecr_repository_arn = local.ecr_repository_arns[t.name]
        cpu                = try(t.fargate.cpu, 256)
        command            = try(t.fargate.command, [])
      }
    }
  }

  # Local tools with permissions: a work role each, nothing else.
  local_work_roles = {
    for t in local.raw.tools : t.name => {
      name         = t.name
      session_tags = try(t.session_tags, local.default_session_tags)
      statements   = local.statements_of[t.name]
    } if t.backend == "local" && length(try(t.permissions, [])) > 0
  }

  # A permission with require_approval holds only for a call whose credentials name an approver:
  # its statement also gets StringLike {aws:PrincipalTag/approver: "?*"} (a missing key never
  # matches), as the gateway's session policy does (gateway/src/credentials/policy.rs). A
  # StringLike pattern of that key the catalog wrote itself (the key without case, as IAM reads
  # it) is narrowed instead: kept when it needs a character, `?*` for a pattern of `*` only,
  # dropped when empty; one holding a policy variable, or none left, is refused below.
  approver_key = "aws:PrincipalTag/approver"
  approvals_of = {
    for t in local.raw.tools : t.name => [
      for i, p in try(t.permissions, []) : {
        name     = try(p.sid, null) != null ? p.sid : "#${i + 1}"
        required = try(p.require_approval, false) == true
        own_key  = length([for k in keys(try(p.condition.StringLike, {})) : k if lower(k) == lower(local.approver_key)]) > 0
        own = flatten([
          for k, v in try(p.condition.StringLike, {}) : v if lower(k) == lower(local.approver_key)
        ])
      }
    ]
  }
  approver_patterns_of = {
    for name, permissions in local.approvals_of : name => [
      for a in permissions : (a.own_key
        ? distinct([for pattern in a.own : replace(pattern, "*", "") == "" ? "?*" : pattern if pattern != ""])
        : ["?*"]
      )
    ]
  }

  # The catalog's permissions of every tool as IAM statements, as the catalog wrote them (what the
  # shared boundary holds).
  written_of = {
    for t in local.raw.tools : t.name => [
      for i, p in try(t.permissions, []) : merge(
        {
          Sid      = try(p.sid, null) != null ? p.sid : "Catalog${i}"
          Effect   = "Allow"
          Action   = p.actions
          Resource = p.resources
        },
        try(p.condition, null) != null ? { Condition = p.condition } : {}
      )
    ]
  }
  # ... and as the tool's work role holds them: with the approver's condition where required.
  statements_of = {
    for t in local.raw.tools : t.name => [
      for i, s in local.written_of[t.name] : merge(s, !local.approvals_of[t.name][i].required ? {} : {
        Condition = merge(
          { for op, block in try(s.Condition, {}) : op => block if op != "StringLike" },
          {
            StringLike = merge(
              { for k, v in try(s.Condition.StringLike, {}) : k => v if lower(k) != lower(local.approver_key) },
              {
                (local.approver_key) = jsondecode(length(local.approver_patterns_of[t.name][i]) == 1
                  ? jsonencode(local.approver_patterns_of[t.name][i][0])
                : jsonencode(local.approver_patterns_of[t.name][i]))
              }
            )
          }
        )
      })
    ]
  }
  # Permissions with require_approval of a tool that cannot meet it: no approval, the approver not
  # tagged, or patterns of the approver that cannot be narrowed.
  approval_unmet = flatten([
    for t in local.raw.tools : [
      for i, a in local.approvals_of[t.name] : compact([
        try(t.approval, null) == null ? "tool ${t.name}: permission ${a.name} has require_approval but the tool has no approval section" : "",
        !contains(try(t.session_tags, local.default_session_tags), "approver") ? "tool ${t.name}: permission ${a.name} has require_approval but session_tags does not list approver" : "",
        anytrue([for pattern in a.own : strcontains(pattern, "$${")]) ? "tool ${t.name}: permission ${a.name}: a StringLike pattern of ${local.approver_key} holds a policy variable, which may expand to nothing" : "",
        a.own_key && length(local.approver_patterns_of[t.name][i]) == 0 ? "tool ${t.name}: permission ${a.name}: StringLike ${local.approver_key} admits no non-empty approver" : "",
      ]) if a.required
    ]
  ])

  # The host the gateway fetches its token signing keys from (gateway.auth.jwks.url): a name the
  # gateway resolves, so the network's DNS Firewall must answer it when the gateway runs there.
  gateway_dns_names = [
    for url in compact([try(local.raw.gateway.auth.jwks.url, "")]) : lower(regex("^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)", url)[0])
  ]

  # Every tool whose calls get credentials, with its statements.
  with_statements = merge(
    { for name, t in local.tools : name => t.statements },
    { for name, t in local.local_work_roles : name => t.statements },
  )

  # Sid prefix per tool for the shared boundary: "tenant-files" -> "TenantFiles".
  sid_prefix = {
    for name in keys(local.with_statements) :
    name => join("", [for w in split("-", replace(name, "_", "-")) : title(w)])
  }

  # The boundary holds the statements as the catalog wrote them: the approver's condition is the
  # work role's own (a boundary shared by every tool has no need of it, and little room).
  boundary_statements = flatten([
    for name in keys(local.with_statements) : [
      for s in local.written_of[name] : merge(s, { Sid = "${local.sid_prefix[name]}${s.Sid}" })
    ]
  ])

  all_actions = distinct(flatten([for statements in values(local.with_statements) : [for s in statements : s.Action]]))
  # Resources whose ARN leaves the account open (`arn:aws:sqs:*:*:jobs`) in a statement that does
  # not pin aws:ResourceAccount: refused below.
  any_account_resources = distinct(flatten([
    for statements in values(local.with_statements) : [
      for s in statements : [
        for r in s.Resource : r if length(regexall("^arn:[^:]*:[^:]*:[^:]*:[^:]*[*?]", r)) > 0
      ] if try(s.Condition.StringEquals["aws:ResourceAccount"], null) == null
    ]
  ]))

  # The boundary's own statements, read from its template (the one list of what it denies): the
  # Sids a tool's statement must not repeat, and the Deny patterns no tool may be granted.
  boundary_own = jsondecode(templatefile("${path.module}/../../../policies/tool-permission-boundary.json.tftpl", {
    partition                 = var.partition
    region                    = var.region
    account_id                = var.account_id
    tool_log_group_arn_prefix = ""
    subnet_arns               = []
    ecr_repository_arns       = ["(every optional statement)"]
    catalog_statements        = []
  })).Statement
  # IAM allows a managed policy 6,144 characters, whitespace not counted, and the boundary holds
  # every tool's statements besides its own. Rendered here with the longest values a deployment
  # can give it (four subnets, a 15-character name_prefix), so that plan, not apply, refuses a
  # catalog that outgrows it.
  boundary_size = length(replace(templatefile("${path.module}/../../../policies/tool-permission-boundary.json.tftpl", {
    partition                 = var.partition
    region                    = var.region
    account_id                = var.account_id
    tool_log_group_arn_prefix = "arn:${var.partition}:logs:${var.region}:${var.account_id}:log-group:/switchboard/name-prefix-max/tools/"
    subnet_arns               = [for i in range(4) : "arn:${var.partition}:ec2:${var.region}:${var.account_id}:subnet/subnet-0123456789abcdef${i}"]
    ecr_repository_arns       = sort(compact(distinct(values(local.ecr_repository_arns))))
    catalog_statements        = local.boundary_statements
  }), "/\\s/", ""))
  boundary_sids = concat([for st in local.boundary_own : st.Sid], [for s in local.boundary_statements : s.Sid])
  boundary_denies = flatten([
    for st in local.boundary_own : [
      for p in st.Action : {
        sid     = st.Sid
        pattern = p
        service = split(":", p)[0]
        name    = trimsuffix(split(":", p)[1], "*")
        prefix  = endswith(p, "*")
      }
    ] if st.Effect == "Deny"
  ])

  # A catalog action is a glob (`*`, `?`) over action names; a Deny pattern is an action name, or a
  # prefix followed by `*`. They meet when some action name matches both (without case, as IAM
  # compares): a Deny's name matches the glob; a Deny's prefix matches the glob cut after some
  # character (a `*` there stands for the rest of the prefix and whatever follows it).
  action_shape = "^[A-Za-z0-9-]+:[A-Za-z0-9*?]+$"
  action_globs = {
    for a in local.all_actions : a => {
      service = "(?i)^${replace(replace(split(":", a)[0], "*", ".*"), "?", ".")}$"
      name    = "(?i)^${replace(replace(split(":", a)[1], "*", ".*"), "?", ".")}$"
      cut = [
        for i in range(length(split(":", a)[1]) + 1) :
        "(?i)^${replace(replace(substr(split(":", a)[1], 0, i), "*", ".*"), "?", ".")}$"
      ]
    } if can(regex(local.action_shape, a)) # any other shape is refused on its own
  }
  denied_grants = distinct(flatten([
    for name, statements in local.with_statements : [
      for s in statements : [
        for a in s.Action : [
          for d in local.boundary_denies : "${name} grants ${a}, which ${d.sid} denies (${d.pattern})"
          if can(regex(local.action_globs[a].service, d.service)) && (
            d.prefix
            ? anytrue([for r in local.action_globs[a].cut : can(regex(r, d.name))])
            : can(regex(local.action_globs[a].name, d.name))
          )
        ] if contains(keys(local.action_globs), a)
      ]
    ]
  ]))

  # The endpoint policies allow, for principals of this account only, what the platform needs
  # through that endpoint plus every catalog action of that service. Private DNS sends the
  # gateway's own calls in the VPC to these endpoints too: minting tool credentials (sts), its
  # logs and its image pull.
  platform_actions = {
    "s3"      = ["s3:GetObject", "s3:PutObject"]
    "sts"     = ["sts:AssumeRole", "sts:GetCallerIdentity", "sts:SetSourceIdentity", "sts:TagSession"]
    "logs"    = ["logs:CreateLogStream", "logs:PutLogEvents"]
    "kms"     = ["kms:DescribeKey"]
    "ecr.api" = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer"]
    "ecr.dkr" = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer"]
    # Nothing of the platform: only what the catalog's tools are granted.
    "secretsmanager" = []
  }
  endpoint_service = {
    "s3"             = "s3", "sts" = "sts", "logs" = "logs", "kms" = "kms", "ecr.api" = "ecr", "ecr.dkr" = "ecr",
    "secretsmanager" = "secretsmanager"
  }
  all_endpoints = sort(distinct(flatten([for t in values(local.tools) : t.reach])))
  endpoint_actions = {
    for e in local.all_endpoints : e => sort(distinct(concat(
      local.platform_actions[e],
      [for a in local.all_actions : a if startswith(a, "${local.endpoint_service[e]}:")]
    )))
  }
}

# Errors the gateway's own loader reports too, repeated here so that `terraform plan` stops on a
# catalog the gateway would refuse rather than deploying part of it. (A name declared twice already
# fails above: it would be a duplicate key of `tools`.)
resource "terraform_data" "valid" {
  input = keys(local.with_statements)

  lifecycle {
    precondition {
      condition     = try(local.raw.version, 0) == 1
      error_message = "${var.catalog_path}: version must be 1."
    }
    precondition {
      condition = alltrue(flatten([
        for t in values(local.tools) : [for e in t.declared_endpoints : contains(local.known_endpoints, e)]
      ]))
      error_message = "${var.catalog_path}: endpoints may only be ${join(", ", local.known_endpoints)}."
    }
    precondition {
      condition     = alltrue([for image in values(local.images) : length(regexall("@sha256:[0-9a-f]{64}$", image)) > 0])
      error_message = "${var.catalog_path}: every fargate.image must be pinned by digest (<repository>@sha256:<64 hex digits>, as scripts/build-image prints it); a tag can be moved to other code."
    }
    precondition {
      condition     = alltrue([for v in values(local.start_timeouts) : try(v >= 1 && v <= 900 && floor(v) == v, false)])
      error_message = "${var.catalog_path}: fargate.start_timeout_seconds must be a whole number of seconds between 1 and 900."
    }
    precondition {
      condition     = alltrue([for arn in values(local.ecr_repository_arns) : arn != null])
      error_message = "${var.catalog_path}: the private subnets reach only ECR; every fargate.image must be an ECR image or a bare repository name."
    }
    precondition {
      condition     = alltrue([for a in local.all_actions : a != "*" && !endswith(a, ":*")])
      error_message = "${var.catalog_path}: a permission action is a wildcard over a whole service."
    }
    precondition {
      condition     = alltrue([for a in local.all_actions : can(regex(local.action_shape, a))])
      error_message = "${var.catalog_path}: a permission action is not of the form service:ActionName (letters and digits, `*` or `?` as wildcards)."
    }
    precondition {
      condition     = length(local.any_account_resources) == 0
      error_message = "${var.catalog_path}: a permission resource names any account (a wildcard in the ARN's account field), which reaches every account's resources that let it in: name the account, or pin the statement to one with the condition {StringEquals: {aws:ResourceAccount: ...}} (\"$${aws:PrincipalAccount}\" for the deployment's own): ${join(", ", local.any_account_resources)}."
    }
    precondition {
      condition     = length(local.denied_grants) == 0
      error_message = "${var.catalog_path}: the tool permission boundary denies what no tool may do (policies/README.md), so these grants could never take effect; remove them: ${join("; ", local.denied_grants)}."
    }
    precondition {
      condition     = local.boundary_size <= 6144
      error_message = "${var.catalog_path}: the tool permission boundary would hold up to ${local.boundary_size} characters (whitespace not counted), and IAM allows a managed policy 6144. It holds every tool's permission statements (local tools' too) besides its own: merge statements that share resources, or deploy part of the catalog as another stack (name_prefix)."
    }
    precondition {
      condition     = length(distinct(local.boundary_sids)) == length(local.boundary_sids)
      error_message = "${var.catalog_path}: two statements of the tool permission boundary would share a Sid (tool name + sid, or one of the boundary's own): rename a sid."
    }
    precondition {
      condition = alltrue([
        for statements in values(local.with_statements) : length(distinct([for s in statements : s.Sid])) == length(statements)
      ])
      error_message = "${var.catalog_path}: a tool has two permission statements with the same sid."
    }
    precondition {
      condition = alltrue(flatten([
        for t in concat(values(local.tools), values(local.local_work_roles)) : [for g in t.session_tags : contains(local.known_session_tags, g)]
      ]))
      error_message = "${var.catalog_path}: session_tags may only be tool, tenant, principal, invocation, approver."
    }
    precondition {
      condition = alltrue([
        for t in local.raw.tools : !contains(try(t.session_tags, []), "approver") || try(t.approval, null) != null
      ])
      error_message = "${var.catalog_path}: only a tool with approval may tag its credentials with `approver`."
    }
    precondition {
      condition     = length(local.approval_unmet) == 0
      error_message = "${var.catalog_path}: a permission with require_approval holds only for credentials that name an approver, so its tool needs an approval section and approver in its session_tags: ${join("; ", local.approval_unmet)}."
    }
  }
}
