// Every isolation claim of docs/deploy-aws.md ("What a policy engine decides"), decided by an IAM
// policy engine over the documents of a deployed stack as the emulators hold them
// (tests/infra/export_documents.py reads them back while tests/infra's stack is up), plus the
// session policy `switchboard session-policies` prints for the same catalog. The requests and the
// expected decisions are written here by hand; no document is.
//
// Each test's name starts with its claim's id in brackets; the last test checks that the claims
// table of docs/deploy-aws.md lists exactly these ids, so the table cannot drift from the suite.
//
//   DEPLOYED=.work/infra/deployed.json SWITCHBOARD_BIN=target/release/switchboard \
//     CLAIMS_DOC=docs/deploy-aws.md node --test deployed.test.mjs
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { CLAIMS, NEVER, APPROVER } from './claims.mjs'

const D = JSON.parse(readFileSync(process.env.DEPLOYED, 'utf8'))
const { account: ACCOUNT, region: REGION, prefix: PREFIX, network: NET } = D
const ids = new Set()

function claim(id, name, fn) {
  ids.add(id)
  test(`[${id}] ${name}`, fn)
}

function role(name) {
  return D.roles[`${PREFIX}-${name}`] ?? assert.fail(`no role ${PREFIX}-${name} deployed`)
}
const roleName = (arn) => arn.split('/').pop()
const session = (arn, id = '01a25000-0000-7000-8000-000000000000') =>
  `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName(arn)}/${id}`
const gatewayRole = D.roles[roleName(D.gateway.role)]
const boundary = D.managed[role('tenant-files-work').boundary] ?? assert.fail('the work roles carry no boundary')

// An address inside a range (the tenth host).
const host = (cidr) => {
  const parts = cidr.split('/')[0].split('.').map(Number)
  parts[3] += 10
  return parts.join('.')
}
// Where a request comes from, as AWS would set the keys. Through an endpoint of the VPC:
// aws:SourceVpc, aws:SourceVpce, aws:VpcSourceIp, and the endpoint's policy applies.
const ORIGINS = {
  tools: (service) => viaEndpoint(service, NET.tool_cidrs[0]),
  'gateway subnets': (service) => viaEndpoint(service, NET.gateway_cidrs[0]),
  internet: () => ({ context: { 'aws:SourceIp': '203.0.113.7', 'aws:ViaAWSService': 'false' } }),
  // Through an endpoint of someone else's VPC: its own ids, and none of this VPC's policies.
  'another VPC': () => ({
    context: { 'aws:SourceVpc': 'vpc-0someone0elses0', 'aws:SourceVpce': 'vpce-0someone0elses0', 'aws:VpcSourceIp': '10.0.0.10', 'aws:ViaAWSService': 'false' }
  }),
  'an AWS service for the tool': () => ({
    context: { 'aws:ViaAWSService': 'true', 'aws:CalledVia': ['cloudformation.amazonaws.com'], 'aws:CalledViaFirst': 'cloudformation.amazonaws.com', 'aws:CalledViaLast': 'cloudformation.amazonaws.com' }
  })
}
function viaEndpoint(service, cidr) {
  const endpoint = D.endpoints[service]
  // A service without an endpoint cannot be reached from the VPC at all; the request is asked
  // anyway, as if it could (the claims that need an endpoint check that it is there).
  if (!endpoint) return { context: { 'aws:SourceVpc': NET.vpc_id, 'aws:VpcSourceIp': host(cidr), 'aws:ViaAWSService': 'false' } }
  return {
    context: {
      'aws:SourceVpc': NET.vpc_id,
      'aws:SourceVpce': endpoint.id,
      'aws:VpcSourceIp': host(cidr),
      'aws:ViaAWSService': 'false'
    },
    endpoint: endpoint.policy
  }
}

async function decide({ principal, action, resource, resourceAccount = ACCOUNT, context, identity = [], sessionPolicy, boundaryPolicy, resourcePolicy, endpoint }) {
  const result = await runSimulation(
    {
      // aws:ResourceAccount is set by AWS on every request; the engine derives no key itself.
      request: { principal, action, resource: { resource, accountId: resourceAccount }, contextVariables: { 'aws:ResourceAccount': resourceAccount, ...context } },
      identityPolicies: identity.map((policy, i) => ({ name: `identity-${i}`, policy })),
      sessionPolicy,
      permissionBoundaryPolicies: boundaryPolicy ? [{ name: 'boundary', policy: boundaryPolicy }] : undefined,
      resourcePolicy,
      vpcEndpointPolicies: endpoint ? [{ name: 'endpoint', policy: endpoint }] : undefined,
      serviceControlPolicies: [],
      resourceControlPolicies: []
    },
    {}
  )
  assert.equal(result.resultType, 'single', JSON.stringify(result.errors ?? `${result.resultType} result for ${action} on ${resource}`))
  assert.deepEqual(result.result.ignoredContextKeys ?? [], [], 'a context key the engine did not use')
  return result.overallResult
}
const allowed = async (request) => assert.equal(await decide(request), 'Allowed')
const refused = async (request) => assert.notEqual(await decide(request), 'Allowed')

// --- a tool call's credentials -------------------------------------------------------------

const printedAt = Date.now()
const sessionPolicies = JSON.parse(
  execFileSync(process.env.SWITCHBOARD_BIN, ['session-policies', D.catalog_path], { encoding: 'utf8' })
)
const catalogTools = Object.fromEntries(D.catalog.tools.map((t) => [t.name, t]))
const DEFAULT_TAGS = ['tool', 'tenant', 'principal', 'invocation']
// The suite's local tool (tests/infra/run.sh adds it to the catalog it deploys).
const DEPLOYED_CLAIMS = {
  ...CLAIMS,
  'tenant-notes': {
    timeout_seconds: 30,
    allowed: [{ action: 's3:GetObject', resource: 'arn:aws:s3:::switchboard-example-files/{tenant}/notes/todo.md' }]
  }
}
const SERVICE_ENDPOINT = { s3: 's3', secretsmanager: 'secretsmanager', sts: 'sts' }

// `approver`: the approver tag's value where the tool's credentials carry one (null: left out, as
// a gateway with a bug might); `withSessionPolicy: false`: the work role alone, as if the gateway
// sent no session policy.
function toolRequest(tool, request, { tenant = 'acme', time, from, approver = APPROVER, withSessionPolicy = true }) {
  const fill = (text) => text?.replaceAll('{tenant}', tenant).replaceAll('{account}', ACCOUNT)
  const work = role(`${tool}-work`)
  const tags = (catalogTools[tool].session_tags ?? DEFAULT_TAGS).filter((t) => t !== 'approver' || approver !== null)
  const values = { tool, tenant: 'acme', principal: 'alice', invocation: '01a25000-0000-7000-8000-000000000000', approver }
  const context = {
    'aws:PrincipalArn': work.arn,
    'aws:PrincipalAccount': ACCOUNT,
    'aws:SourceIdentity': 'alice-0123456789abcdef',
    'aws:CurrentTime': new Date(time).toISOString(),
    'aws:SecureTransport': 'true'
  }
  for (const tag of tags) context[`aws:PrincipalTag/${tag}`] = values[tag]
  if (request.prefix !== undefined) context['s3:prefix'] = fill(request.prefix)
  const service = request.action.split(':')[0]
  const where = ORIGINS[from](SERVICE_ENDPOINT[service])
  return {
    principal: session(work.arn),
    action: request.action,
    resource: fill(request.resource),
    context: { ...context, ...where.context },
    identity: Object.values(work.inline),
    sessionPolicy: withSessionPolicy ? (sessionPolicies[tool] ?? assert.fail(`no session policy for ${tool}`)) : undefined,
    boundaryPolicy: D.managed[work.boundary],
    endpoint: where.endpoint
  }
}

test('every deployed work role has claims, and only those', () => {
  const deployed = Object.keys(D.roles).filter((n) => n.endsWith('-work')).map((n) => n.slice(PREFIX.length + 1, -'-work'.length))
  assert.deepEqual(deployed.sort(), Object.keys(DEPLOYED_CLAIMS).sort())
})

for (const [tool, claims] of Object.entries(DEPLOYED_CLAIMS)) {
  const inVpc = catalogTools[tool].backend !== 'local'
  const home = inVpc ? 'tools' : 'internet'
  const homeName = inVpc ? "from the tool's subnets" : "from the gateway's machine"
  const during = printedAt + 1000
  const past = printedAt + claims.timeout_seconds * 1000 + 2000
  for (const request of claims.allowed) {
    if (inVpc) {
      const service = SERVICE_ENDPOINT[request.action.split(':')[0]]
      assert.ok(D.endpoints[service], `${tool}: ${request.action} needs the ${service} endpoint, and the VPC has none`)
    }
    const name = `${tool}: ${request.action} on ${request.resource}${request.prefix ? ` (prefix ${request.prefix})` : ''}`
    claim('call-own-tenant', `${name}: allowed for its own tenant ${homeName} during the call`, () =>
      allowed(toolRequest(tool, request, { time: during, from: home })))
    if ((request.resource + (request.prefix ?? '')).includes('{tenant}')) {
      claim('call-other-tenant', `${name}: refused for another tenant`, () =>
        refused(toolRequest(tool, request, { tenant: 'globex', time: during, from: home })))
    }
    claim('call-deadline', `${name}: refused past the ${claims.timeout_seconds} s deadline`, () =>
      refused(toolRequest(tool, request, { time: past, from: home })))
    if (inVpc) {
      claim('call-gateway-subnets', `${name}: refused from the gateway's subnets, through the same endpoint`, () =>
        refused(toolRequest(tool, request, { time: during, from: 'gateway subnets' })))
      claim('call-internet', `${name}: refused from the internet`, () =>
        refused(toolRequest(tool, request, { time: during, from: 'internet' })))
      claim('call-aws-service', `${name}: allowed when an AWS service makes it for the tool (aws:ViaAWSService)`, () =>
        allowed(toolRequest(tool, request, { time: during, from: 'an AWS service for the tool' })))
    }
  }
  for (const request of [...(claims.refused ?? []), ...NEVER]) {
    claim('call-ungranted', `${tool}: ${request.action} on ${request.resource}: refused`, () =>
      refused(toolRequest(tool, request, { time: during, from: home })))
  }
}

// --- permissions that require approval: the deployed work role decides, whatever the gateway does

const approvalTools = Object.entries(DEPLOYED_CLAIMS).filter(([, c]) => c.approval)
test('the deployed catalog has a tool whose permission requires approval', () => {
  assert.ok(approvalTools.some(([, c]) => c.allowed.some((r) => r.requires_approval)), 'no require_approval claim to decide')
})
for (const [tool, claims] of approvalTools) {
  assert.ok((catalogTools[tool].session_tags ?? []).includes('approver'), `${tool}: its credentials carry no approver tag`)
  const during = printedAt + 1000
  const from = catalogTools[tool].backend !== 'local' ? 'tools' : 'internet'
  for (const request of claims.allowed) {
    const name = `${tool}: ${request.action} on ${request.resource}`
    const ask = (options) => toolRequest(tool, request, { time: during, from, ...options })
    if (request.requires_approval) {
      // Also without the session policy: what the two refusals below take away is the tag alone.
      claim('approval-granted', `${name}: allowed to a call whose credentials name its approver, with and without the session policy`, async () => {
        await allowed(ask({}))
        await allowed(ask({ withSessionPolicy: false }))
      })
      claim('approval-missing', `${name}: refused without an approver tag, by the work role alone (no session policy) and with it`, async () => {
        await refused(ask({ approver: null, withSessionPolicy: false }))
        await refused(ask({ approver: null }))
      })
      claim('approval-empty', `${name}: refused with an empty approver tag, by the work role alone and with the session policy`, async () => {
        await refused(ask({ approver: '', withSessionPolicy: false }))
        await refused(ask({ approver: '' }))
      })
    } else {
      claim('approval-others', `${name}: a statement without require_approval needs no approver tag`, async () => {
        await allowed(ask({ approver: null, withSessionPolicy: false }))
        await allowed(ask({ approver: null }))
      })
    }
  }
}

// --- the boundary: what no catalog can grant -----------------------------------------------

// A catalog that grants the action: the tool's work policy allows it, and so does the boundary
// (which holds every catalog statement); each boundary Deny must still refuse it.
const GRANTED_BY_A_CATALOG = [
  ['DenyIam', 'iam:CreateUser', 'arn:aws:iam::{account}:user/probe'],
  ['DenyIam', 'iam:PassRole', 'arn:aws:iam::{account}:role/admin'],
  ['DenyRoleChaining', 'sts:AssumeRole', 'arn:aws:iam::{account}:role/admin'],
  ['DenyRoleChaining', 'sts:GetFederationToken', 'arn:aws:sts::{account}:federated-user/probe'],
  ['DenyOrganizations', 'organizations:LeaveOrganization', '*'],
  ['DenyAuditTampering', 'cloudtrail:StopLogging', 'arn:aws:cloudtrail:{region}:{account}:trail/main'],
  ['DenyAuditTampering', 'logs:DeleteLogGroup', 'arn:aws:logs:{region}:{account}:log-group:/switchboard/x'],
  ['DenyKeyDestruction', 'kms:CreateGrant', 'arn:aws:kms:{region}:{account}:key/0000'],
  ['DenyKeyDestruction', 'kms:ScheduleKeyDeletion', 'arn:aws:kms:{region}:{account}:key/0000'],
  ['DenyNetworkChanges', 'ec2:AuthorizeSecurityGroupEgress', 'arn:aws:ec2:{region}:{account}:security-group/sg-0'],
  ['DenyNetworkChanges', 'ec2:CreateRoute', 'arn:aws:ec2:{region}:{account}:route-table/rtb-0'],
  ['DenyNetworkChanges', 'route53resolver:DisassociateFirewallRuleGroup', 'arn:aws:route53resolver:{region}:{account}:firewall-rule-group-association/rslvr-frgassoc-0'],
  ['DenyToolCodeChanges', 'lambda:UpdateFunctionCode', 'arn:aws:lambda:{region}:{account}:function:probe'],
  ['DenyToolCodeChanges', 'ecs:RegisterTaskDefinition', 'arn:aws:ecs:{region}:{account}:task-definition/probe:1'],
  ['DenySharingOutward', 's3:PutBucketPolicy', 'arn:aws:s3:::switchboard-example-files'],
  ['DenySharingOutward', 's3:PutObjectAcl', 'arn:aws:s3:::switchboard-example-files/acme/x'],
  ['DenySharingOutward', 's3:PutReplicationConfiguration', 'arn:aws:s3:::switchboard-example-files'],
  ['DenySharingOutward', 's3:PutBucketPublicAccessBlock', 'arn:aws:s3:::switchboard-example-files'],
  ['DenySharingOutward', 'secretsmanager:PutResourcePolicy', 'arn:aws:secretsmanager:{region}:{account}:secret:switchboard/acme/db-AbCdEf'],
  ['DenySharingOutward', 'logs:PutSubscriptionFilter', 'arn:aws:logs:{region}:{account}:log-group:/switchboard/x'],
  ['DenySharingOutward', 'logs:CreateExportTask', 'arn:aws:logs:{region}:{account}:log-group:/switchboard/x'],
  ['DenySharingOutward', 'ec2:ModifySnapshotAttribute', 'arn:aws:ec2:{region}::snapshot/snap-0'],
  ['DenySharingOutward', 'rds:ModifyDBSnapshotAttribute', 'arn:aws:rds:{region}:{account}:snapshot:probe'],
  ['DenySharingOutward', 'servicediscovery:RegisterInstance', 'arn:aws:servicediscovery:{region}:{account}:service/srv-0'],
  ['DenySharingOutward', 'route53:ChangeResourceRecordSets', 'arn:aws:route53:::hostedzone/Z0'],
  ['DenySharingOutward', 'sqs:AddPermission', 'arn:aws:sqs:{region}:{account}:probe'],
  ['DenySharingOutward', 'ram:AssociateResourceShare', 'arn:aws:ram:{region}:{account}:resource-share/probe']
]
const fillAccount = (text) => text.replaceAll('{account}', ACCOUNT).replaceAll('{region}', REGION)
for (const [sid, action, resource] of GRANTED_BY_A_CATALOG) {
  claim('boundary-deny', `${sid}: ${action}, granted by a catalog, is refused by the boundary`, async () => {
    assert.ok(boundary.Statement.some((s) => s.Sid === sid && s.Effect === 'Deny'), `the deployed boundary has no ${sid}`)
    const grant = { Sid: 'CatalogGrant', Effect: 'Allow', Action: action, Resource: '*' }
    const work = role('tenant-files-work')
    const result = await decide({
      principal: session(work.arn),
      action,
      resource: fillAccount(resource),
      context: { 'aws:PrincipalArn': work.arn, 'aws:PrincipalAccount': ACCOUNT, ...ORIGINS['an AWS service for the tool']().context },
      identity: [{ Version: '2012-10-17', Statement: [grant] }],
      boundaryPolicy: { ...boundary, Statement: [...boundary.Statement, grant] }
    })
    assert.equal(result, 'ExplicitlyDenied')
  })
}

// --- minting: the work roles' trust policies -----------------------------------------------

const gatewaySession = session(D.gateway.role, 'gateway-task')
function mint(tool, action, { tags = {}, drop = [], transitive, sourceIdentity = 'alice-0123456789abcdef', as = gatewaySession, asRole = D.gateway.role } = {}) {
  const work = role(`${tool}-work`)
  const keys = catalogTools[tool].session_tags ?? DEFAULT_TAGS
  const values = { tool, tenant: 'acme', principal: 'alice@example.com', invocation: '01a25000-0000-7000-8000-000000000000', approver: APPROVER, ...tags }
  const context = { 'aws:PrincipalArn': asRole, 'aws:PrincipalAccount': ACCOUNT }
  if (action === 'sts:TagSession') {
    const sent = keys.filter((k) => !drop.includes(k)).concat(Object.keys(tags).filter((k) => !keys.includes(k)))
    context['aws:TagKeys'] = sent
    for (const k of sent) context[`aws:RequestTag/${k}`] = values[k]
    if (transitive) context['sts:TransitiveTagKeys'] = transitive
  } else if (sourceIdentity !== null) {
    context['sts:SourceIdentity'] = sourceIdentity
  }
  // From the gateway's subnets, through the STS endpoint (the gateway role works nowhere else).
  const where = ORIGINS['gateway subnets']('sts')
  return {
    principal: as,
    action,
    resource: work.arn,
    context: { ...where.context, ...context },
    identity: Object.values(D.roles[roleName(asRole)]?.inline ?? {}),
    resourcePolicy: work.trust,
    endpoint: where.endpoint
  }
}
const taggedTools = Object.keys(DEPLOYED_CLAIMS).filter((t) => (catalogTools[t].session_tags ?? DEFAULT_TAGS).includes('tenant'))
for (const tool of Object.keys(DEPLOYED_CLAIMS)) {
  claim('mint-gateway', `${tool}: the gateway role assumes its work role with a source identity and the catalog's tags`, async () => {
    await allowed(mint(tool, 'sts:AssumeRole'))
    await allowed(mint(tool, 'sts:SetSourceIdentity'))
    await allowed(mint(tool, 'sts:TagSession'))
  })
  claim('mint-no-source-identity', `${tool}: refused without a source identity`, () =>
    refused(mint(tool, 'sts:AssumeRole', { sourceIdentity: null })))
  claim('mint-other-principal', `${tool}: refused to any other role of the account, a tool's work role included`, async () => {
    const other = role('state_validate-work').arn
    await refused(mint(tool, 'sts:AssumeRole', { as: session(other), asRole: other }))
    await refused(mint(tool, 'sts:AssumeRole', { as: session(D.gateway.execution_role), asRole: D.gateway.execution_role }))
  })
  claim('mint-tags', `${tool}: refused with a tag missing, an extra tag, a transitive tag or another tool's name`, async () => {
    const keys = catalogTools[tool].session_tags ?? DEFAULT_TAGS
    await refused(mint(tool, 'sts:TagSession', { drop: [keys[keys.length - 1]] }))
    await refused(mint(tool, 'sts:TagSession', { tags: { team: 'ops' } }))
    await refused(mint(tool, 'sts:TagSession', { transitive: ['tenant'] }))
    await refused(mint(tool, 'sts:TagSession', { tags: { tool: 'echo' } }))
  })
}
const MALFORMED_TENANTS = ['acme/../globex', 'ac*me', 'acme.globex', '', 'Acme', '-acme', 'ac me', 'ac_me', 'a'.repeat(64)]
for (const tool of taggedTools) {
  for (const tenant of MALFORMED_TENANTS) {
    claim('mint-malformed-tenant', `${tool}: the trust policy refuses the tenant ${JSON.stringify(tenant.length > 20 ? `${tenant.slice(0, 8)}… (${tenant.length} characters)` : tenant)}, whatever the gateway sends`, () =>
      refused(mint(tool, 'sts:TagSession', { tags: { tenant } })))
  }
  claim('mint-malformed-tenant', `${tool}: the trust policy takes a tenant of 63 characters of a-z, 0-9 and '-'`, () =>
    allowed(mint(tool, 'sts:TagSession', { tags: { tenant: 'a1-'.repeat(21) } })))
}
for (const tool of Object.keys(DEPLOYED_CLAIMS).filter((t) => (catalogTools[t].session_tags ?? DEFAULT_TAGS).includes('principal'))) {
  claim('mint-long-principal', `${tool}: the trust policy refuses a principal over 128 characters and takes one of 128`, async () => {
    await refused(mint(tool, 'sts:TagSession', { tags: { principal: 'p'.repeat(129) } }))
    await allowed(mint(tool, 'sts:TagSession', { tags: { principal: 'p'.repeat(128) } }))
  })
}
for (const tool of Object.keys(DEPLOYED_CLAIMS).filter((t) => (catalogTools[t].session_tags ?? DEFAULT_TAGS).includes('approver'))) {
  claim('mint-malformed-approver', `${tool}: the trust policy refuses an empty approver and one over 128 characters, and takes one of 128`, async () => {
    await refused(mint(tool, 'sts:TagSession', { tags: { approver: '' } }))
    await refused(mint(tool, 'sts:TagSession', { tags: { approver: 'b'.repeat(129) } }))
    await allowed(mint(tool, 'sts:TagSession', { tags: { approver: 'b'.repeat(128) } }))
  })
}
for (const tool of Object.keys(DEPLOYED_CLAIMS).filter((t) => (catalogTools[t].session_tags ?? DEFAULT_TAGS).includes('invocation'))) {
  claim('mint-malformed-invocation', `${tool}: the trust policy refuses an invocation id not shaped like a UUID`, () =>
    refused(mint(tool, 'sts:TagSession', { tags: { invocation: 'acme/*' } })))
}
claim('chain', "a call's credentials cannot assume another role, even one that trusts them", async () => {
  const work = role('tenant-files-work')
  const target = role('state_validate-work')
  const result = await decide({
    principal: session(work.arn),
    action: 'sts:AssumeRole',
    resource: target.arn,
    context: { 'aws:PrincipalArn': work.arn, 'aws:PrincipalAccount': ACCOUNT, 'sts:SourceIdentity': 'alice-0123456789abcdef', ...ORIGINS.tools('sts').context },
    identity: [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] }],
    boundaryPolicy: D.managed[work.boundary],
    // Even a trust policy that names the work role.
    resourcePolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: work.arn }, Action: 'sts:AssumeRole' }] },
    endpoint: D.endpoints.sts?.policy
  })
  assert.equal(result, 'ExplicitlyDenied')
})

// --- the gateway role ----------------------------------------------------------------------

const gatewayIdentity = Object.values(gatewayRole.inline)
// The gateway's requests come from its subnets through the endpoint of the service they call
// (`iam:PassRole` is no request of its own: it is checked with the RunTask it comes with, and no
// endpoint policy applies to it).
const GATEWAY_SERVICE = { sts: 'sts', ecs: 'ecs', lambda: 'lambda', s3: 's3', iam: 'ecs', dynamodb: 'dynamodb' }
function asGateway(action, resource, context = {}, from = 'gateway subnets') {
  const service = GATEWAY_SERVICE[action.split(':')[0]]
  const where = ORIGINS[from](service)
  if (action === 'iam:PassRole') delete where.endpoint
  return {
    principal: gatewaySession,
    action,
    resource,
    context: { 'aws:PrincipalArn': D.gateway.role, 'aws:PrincipalAccount': ACCOUNT, ...where.context, ...context },
    identity: gatewayIdentity,
    endpoint: where.endpoint
  }
}
const ecsTask = (cluster) => `arn:aws:ecs:${REGION}:${ACCOUNT}:task/${cluster}/0123456789abcdef0123456789abcdef`
function ecsAssumes(roleArn, sourceArn) {
  return {
    principal: 'ecs-tasks.amazonaws.com',
    action: 'sts:AssumeRole',
    resource: roleArn,
    context: { 'aws:SourceAccount': ACCOUNT, 'aws:SourceArn': sourceArn },
    resourcePolicy: D.roles[roleName(roleArn)].trust
  }
}
const gatewayCluster = D.gateway.gateway_cluster.split('/').pop()
const toolsCluster = D.gateway.tools_cluster.split('/').pop()
claim('gateway-trust', "the gateway role is ECS's for the gateway's own tasks, not for a tool task's", async () => {
  await allowed(ecsAssumes(D.gateway.role, ecsTask(gatewayCluster)))
  await refused(ecsAssumes(D.gateway.role, ecsTask(toolsCluster)))
  await refused(ecsAssumes(D.gateway.role, ecsTask('someone-elses')))
})
const fargateTools = Object.entries(D.tools).filter(([, t]) => t.backend === 'fargate')
claim('gateway-trust', "a Fargate tool's execution role is ECS's for the tools' tasks, not for the gateway's", async () => {
  assert.ok(fargateTools.length > 0, 'the catalog deploys no Fargate tool')
  for (const [, t] of fargateTools) {
    await allowed(ecsAssumes(t.execution_role_arn, ecsTask(toolsCluster)))
    await refused(ecsAssumes(t.execution_role_arn, ecsTask(gatewayCluster)))
  }
})
claim('gateway-assumes', 'the gateway role may assume the work roles and no other role', async () => {
  for (const [name, r] of Object.entries(D.roles)) {
    const request = { ...asGateway('sts:AssumeRole', r.arn, { 'sts:SourceIdentity': 'alice-0123456789abcdef' }), resourcePolicy: r.trust }
    if (name.endsWith('-work')) await allowed(request)
    else await refused(request)
  }
})
claim('gateway-runs', "the gateway role runs the tools' task definitions in the tools' cluster only", async () => {
  for (const [, t] of fargateTools) {
    await allowed(asGateway('ecs:RunTask', t.task_definition_arn, { 'ecs:cluster': D.gateway.tools_cluster }))
    await refused(asGateway('ecs:RunTask', t.task_definition_arn, { 'ecs:cluster': D.gateway.gateway_cluster }))
  }
  await refused(asGateway('ecs:RunTask', D.gateway.task_definition, { 'ecs:cluster': D.gateway.tools_cluster }))
  await refused(asGateway('ecs:RunTask', D.gateway.task_definition, { 'ecs:cluster': D.gateway.gateway_cluster }))
})
claim('gateway-passes', "the gateway role passes the Fargate tools' execution roles to ECS tasks, and no other role", async () => {
  const passable = new Set(fargateTools.map(([, t]) => t.execution_role_arn))
  for (const r of Object.values(D.roles)) {
    const request = asGateway('iam:PassRole', r.arn, { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' })
    if (passable.has(r.arn)) await allowed(request)
    else await refused(request)
  }
  for (const arn of passable) await refused(asGateway('iam:PassRole', arn, { 'iam:PassedToService': 'lambda.amazonaws.com' }))
})
claim('gateway-invokes', "the gateway role invokes the Lambda tools' functions and nothing else", async () => {
  for (const [, t] of Object.entries(D.tools).filter(([, t]) => t.backend === 'lambda')) {
    await allowed(asGateway('lambda:InvokeFunction', t.function_arn))
  }
  await refused(asGateway('lambda:InvokeFunction', `arn:aws:lambda:${REGION}:${ACCOUNT}:function:someone-elses`))
  await refused(asGateway('lambda:UpdateFunctionCode', Object.values(D.tools).find((t) => t.function_arn).function_arn))
})

claim('gateway-approvals', "the gateway role reads and writes the approvals table's items and queries its index, nothing else", async () => {
  const table = D.gateway.approvals_table
  const index = `${table.arn}/index/${table.index_name}`
  for (const action of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']) {
    await allowed(asGateway(action, table.arn))
    await refused(asGateway(action, `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/someone-elses`))
  }
  await allowed(asGateway('dynamodb:Query', index))
  await refused(asGateway('dynamodb:Query', table.arn))
  for (const action of ['dynamodb:Scan', 'dynamodb:DeleteItem', 'dynamodb:DeleteTable', 'dynamodb:UpdateTable', 'dynamodb:BatchGetItem']) {
    await refused(asGateway(action, table.arn))
  }
  await refused(asGateway('dynamodb:GetItem', table.arn, {}, 'internet'))
})

claim('gateway-perimeter', "the gateway role's credentials are useless outside the deployment's VPC (found by the review: no perimeter)", async () => {
  const work = role('tenant-files-work')
  const [, fargate] = fargateTools[0]
  const lambda = Object.values(D.tools).find((t) => t.backend === 'lambda')
  const requests = [
    ['sts:AssumeRole', work.arn, { 'sts:SourceIdentity': 'alice-0123456789abcdef' }, work.trust],
    ['ecs:RunTask', fargate.task_definition_arn, { 'ecs:cluster': D.gateway.tools_cluster }],
    ['lambda:InvokeFunction', lambda.function_arn, {}],
    ['s3:PutObject', `${D.bucket.arn}/${D.bucket.prefix}x/invocation.json`, { 'aws:SecureTransport': 'true', 's3:TlsVersion': '1.3', 's3:ResourceAccount': ACCOUNT }, D.bucket.policy]
  ]
  for (const [action, resource, context, resourcePolicy] of requests) {
    await allowed({ ...asGateway(action, resource, context), resourcePolicy })
    await refused({ ...asGateway(action, resource, context, 'internet'), resourcePolicy })
  }
})

// --- the invocation bucket: Fargate hand-over ------------------------------------------------

const B = D.bucket
const invocationObject = `${B.arn}/${B.prefix}01a25000-0000-7000-8000-000000000000/invocation.json`
const resultObject = `${B.arn}/${B.prefix}01a25000-0000-7000-8000-000000000000/result.json`
const S3_REQUEST = { 'aws:SecureTransport': 'true', 's3:TlsVersion': '1.3', 's3:ResourceAccount': ACCOUNT }
function onBucket(principalArn, action, object, from, { identity, context = {} } = {}) {
  const where = ORIGINS[from]('s3')
  return {
    principal: principalArn === D.gateway.role ? gatewaySession : principalArn.includes(':role/') ? session(principalArn) : principalArn,
    action,
    resource: object,
    context: { 'aws:PrincipalArn': principalArn, 'aws:PrincipalAccount': principalArn.split(':')[4], ...S3_REQUEST, ...where.context, ...context },
    identity: identity ?? (principalArn === D.gateway.role ? gatewayIdentity : []),
    resourcePolicy: B.policy,
    endpoint: where.endpoint
  }
}
const EVERYTHING = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }]
claim('bucket-gateway', 'the gateway writes, reads and deletes invocation objects through the S3 endpoint', async () => {
  for (const action of ['s3:PutObject', 's3:GetObject', 's3:DeleteObject']) {
    await allowed(onBucket(D.gateway.role, action, invocationObject, 'gateway subnets'))
  }
})
claim('bucket-task', "a Fargate task uses its presigned GET and PUT (the gateway's signature) from the tool subnets", async () => {
  await allowed(onBucket(D.gateway.role, 's3:GetObject', invocationObject, 'tools'))
  await allowed(onBucket(D.gateway.role, 's3:PutObject', resultObject, 'tools'))
})
claim('bucket-url-outside', 'a presigned URL read from DescribeTasks or CloudTrail is refused from the internet and through any other endpoint', async () => {
  await refused(onBucket(D.gateway.role, 's3:GetObject', invocationObject, 'internet'))
  await refused(onBucket(D.gateway.role, 's3:PutObject', resultObject, 'internet'))
  await refused(onBucket(D.gateway.role, 's3:GetObject', invocationObject, 'another VPC'))
})
claim('bucket-others', "a tool's credentials, an administrator of the account and another account cannot touch invocation objects", async () => {
  const work = role('terraform_plan-work').arn
  await refused(onBucket(work, 's3:GetObject', invocationObject, 'tools', { identity: EVERYTHING, context: { 'aws:PrincipalTag/tenant': 'acme' } }))
  const admin = `arn:aws:iam::${ACCOUNT}:role/admin`
  for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) {
    await refused(onBucket(admin, action, invocationObject, 'gateway subnets', { identity: EVERYTHING }))
  }
  await refused(onBucket('arn:aws:iam::111122223333:role/admin', 's3:GetObject', invocationObject, 'internet', { identity: EVERYTHING }))
})
claim('bucket-tls', 'the invocation bucket refuses plain HTTP and TLS older than 1.2, even to the gateway', async () => {
  await refused(onBucket(D.gateway.role, 's3:GetObject', invocationObject, 'gateway subnets', { context: { 'aws:SecureTransport': 'false' } }))
  await refused(onBucket(D.gateway.role, 's3:GetObject', invocationObject, 'gateway subnets', { context: { 's3:TlsVersion': '1.1' } }))
})

// --- KMS keys ----------------------------------------------------------------------------------

function onKey(key, principalArn, action, context = {}, identity = EVERYTHING) {
  return {
    principal: principalArn === D.gateway.role ? gatewaySession : session(principalArn),
    action,
    resource: key.arn,
    context: { 'aws:PrincipalArn': principalArn, 'aws:PrincipalAccount': ACCOUNT, ...context },
    identity,
    resourcePolicy: key.policy
  }
}
const admin = `arn:aws:iam::${ACCOUNT}:role/admin`
for (const [name, key] of Object.entries(D.keys)) {
  claim('key-no-grants', `the ${name} key: no principal of the account can grant itself its use (kms:CreateGrant), whatever IAM allows`, () =>
    refused(onKey(key, admin, 'kms:CreateGrant', { 'kms:GrantIsForAWSResource': 'false', 'kms:CallerAccount': ACCOUNT })))
  claim('key-admin', `the ${name} key: the account administers it (DescribeKey, EnableKeyRotation) through IAM`, async () => {
    await allowed(onKey(key, admin, 'kms:DescribeKey', { 'kms:CallerAccount': ACCOUNT }))
    await allowed(onKey(key, admin, 'kms:EnableKeyRotation', { 'kms:CallerAccount': ACCOUNT }))
  })
}
claim('key-invocations', 'the invocation key decrypts for the gateway through S3 only, and for nobody else', async () => {
  const viaS3 = { 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': ACCOUNT }
  await allowed(onKey(D.keys.invocations, D.gateway.role, 'kms:Decrypt', viaS3, []))
  await refused(onKey(D.keys.invocations, D.gateway.role, 'kms:Decrypt', { 'kms:CallerAccount': ACCOUNT }, []))
  await refused(onKey(D.keys.invocations, admin, 'kms:Decrypt', viaS3))
})

// --- the session key's secret -------------------------------------------------------------------

claim('session-key-secret', "only the gateway's execution role reads the session key, whatever IAM grants elsewhere", async () => {
  const S = D.session_key_secret
  assert.ok(S.policy, 'the session key secret has no resource policy')
  const read = (principalArn, identity) => ({
    principal: session(principalArn),
    action: 'secretsmanager:GetSecretValue',
    resource: S.arn,
    context: { 'aws:PrincipalArn': principalArn, 'aws:PrincipalAccount': ACCOUNT },
    identity,
    resourcePolicy: S.policy
  })
  await allowed(read(D.gateway.execution_role, Object.values(D.roles[roleName(D.gateway.execution_role)].inline)))
  await refused(read(D.gateway.role, EVERYTHING))
  await refused(read(admin, EVERYTHING))
})

// --- endpoints ----------------------------------------------------------------------------------

claim('endpoint-layers', "ECR's image layers come through the S3 endpoint, signed by a principal that is not this account's", async () => {
  const layers = `arn:aws:s3:::prod-${REGION}-starport-layer-bucket/some-layer`
  const ecr = 'arn:aws:sts::999999999999:assumed-role/ecr-layer-signer/session'
  await allowed({
    principal: ecr,
    action: 's3:GetObject',
    resource: layers,
    resourceAccount: '999999999999',
    context: { 'aws:PrincipalArn': 'arn:aws:iam::999999999999:role/ecr-layer-signer', 'aws:PrincipalAccount': '999999999999', ...S3_REQUEST, 's3:ResourceAccount': '999999999999', ...ORIGINS.tools('s3').context },
    identity: EVERYTHING,
    resourcePolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: layers }] },
    endpoint: D.endpoints.s3.policy
  })
})
claim('endpoint-other-account', "no endpoint lets this account's principals reach another account's resources", async () => {
  const work = role('tenant-files-work').arn
  for (const [service, action, resource] of [
    ['s3', 's3:GetObject', 'arn:aws:s3:::someone-elses/acme/x'],
    ['secretsmanager', 'secretsmanager:GetSecretValue', 'arn:aws:secretsmanager:{region}:111122223333:secret:x-AbCdEf'],
    ['sts', 'sts:AssumeRole', 'arn:aws:iam::111122223333:role/x'],
    ['logs', 'logs:PutLogEvents', 'arn:aws:logs:{region}:111122223333:log-group:x:log-stream:y'],
    ['ecr.api', 'ecr:BatchGetImage', 'arn:aws:ecr:{region}:111122223333:repository/x']
  ]) {
    const where = ORIGINS.tools(service)
    await refused({
      principal: session(work),
      action,
      resource: fillAccount(resource),
      resourceAccount: '111122223333',
      context: { 'aws:PrincipalArn': work, 'aws:PrincipalAccount': ACCOUNT, ...(service === 's3' ? { ...S3_REQUEST, 's3:ResourceAccount': '111122223333' } : {}), ...where.context },
      identity: EVERYTHING,
      resourcePolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }] },
      endpoint: where.endpoint
    })
  }
})
claim('endpoint-other-principal', "no endpoint admits another account's principal to this account's resources", async () => {
  const stranger = 'arn:aws:iam::111122223333:role/x'
  for (const service of Object.keys(D.endpoints)) {
    const where = ORIGINS.tools(service)
    const [action, resource] = {
      s3: ['s3:GetObject', 'arn:aws:s3:::switchboard-example-files/acme/x'],
      sts: ['sts:AssumeRole', D.gateway.role],
      logs: ['logs:PutLogEvents', `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:x:log-stream:y`],
      secretsmanager: ['secretsmanager:GetSecretValue', `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:x-AbCdEf`],
      'ecr.api': ['ecr:BatchGetImage', `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/x`],
      'ecr.dkr': ['ecr:BatchGetImage', `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/x`],
      lambda: ['lambda:InvokeFunction', `arn:aws:lambda:${REGION}:${ACCOUNT}:function:x`],
      ecs: ['ecs:DescribeTasks', `arn:aws:ecs:${REGION}:${ACCOUNT}:task/x/0123`],
      dynamodb: ['dynamodb:GetItem', D.gateway.approvals_table.arn]
    }[service] ?? assert.fail(`no request to ask of the ${service} endpoint`)
    await refused({
      principal: 'arn:aws:sts::111122223333:assumed-role/x/s',
      action,
      resource,
      context: { 'aws:PrincipalArn': stranger, 'aws:PrincipalAccount': '111122223333', ...(service === 's3' ? S3_REQUEST : {}), ...where.context },
      identity: EVERYTHING,
      resourcePolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }] },
      endpoint: where.endpoint
    })
  }
})

// --- the table of docs/deploy-aws.md ------------------------------------------------------------

test('docs/deploy-aws.md lists exactly the claims decided here', () => {
  const doc = readFileSync(process.env.CLAIMS_DOC, 'utf8')
  const start = doc.indexOf('<!-- claims: tests/iam/deployed.test.mjs -->')
  const end = doc.indexOf('<!-- /claims -->')
  assert.ok(start >= 0 && end > start, 'docs/deploy-aws.md has no claims table between its markers')
  const listed = [...doc.slice(start, end).matchAll(/^\|\s*`([a-z0-9-]+)`\s*\|/gm)].map((m) => m[1])
  assert.deepEqual([...listed].sort(), [...ids].sort(), 'the table and the suite name different claims')
  assert.equal(new Set(listed).size, listed.length, 'a claim is listed twice')
})
