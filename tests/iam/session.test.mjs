// What a call's credentials may do, decided by an IAM policy engine over the session policy the
// gateway sends with the call's AssumeRole (`switchboard session-policies`, the same code), with a
// work role that allows everything: what is refused here is refused by the session policy alone,
// whatever the work role grants. The claims are written below, by hand, from what the catalog
// promises; the documents are never: they come from the binary. Run by tests/iam/run.sh:
//
//   SWITCHBOARD_BIN=target/release/switchboard CATALOG=examples/catalog.aws.yaml node --test
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { CLAIMS, NEVER, APPROVER } from './claims.mjs'

const ACCOUNT = '123456789012'
const WIDEST_WORK_ROLE = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'Everything', Effect: 'Allow', Action: '*', Resource: '*' }]
}

const printedAt = Date.now()
const policies = JSON.parse(
  execFileSync(process.env.SWITCHBOARD_BIN, ['session-policies', process.env.CATALOG], { encoding: 'utf8' })
)

// `approver`: the value of the call's approver tag, or undefined for credentials without one.
async function decide(tool, policy, request, tenant, time, approver) {
  const fill = (text) => text?.replaceAll('{tenant}', tenant).replaceAll('{account}', ACCOUNT)
  const context = {
    'aws:PrincipalTag/tenant': 'acme',
    'aws:PrincipalArn': `arn:aws:iam::${ACCOUNT}:role/switchboard-${tool}-work`,
    'aws:PrincipalAccount': ACCOUNT,
    'aws:ResourceAccount': ACCOUNT,
    'aws:CurrentTime': new Date(time).toISOString()
  }
  if (approver !== undefined) context['aws:PrincipalTag/approver'] = approver
  if (request.prefix !== undefined) context['s3:prefix'] = fill(request.prefix)
  const result = await runSimulation(
    {
      request: {
        principal: `arn:aws:sts::${ACCOUNT}:assumed-role/switchboard-${tool}-work/01a25000-0000-7000-8000-000000000000`,
        action: request.action,
        resource: { resource: fill(request.resource), accountId: ACCOUNT },
        contextVariables: context
      },
      identityPolicies: [{ name: 'widest-work-role', policy: WIDEST_WORK_ROLE }],
      sessionPolicy: policy,
      serviceControlPolicies: [],
      resourceControlPolicies: []
    },
    {}
  )
  assert.equal(result.resultType, 'single', JSON.stringify(result.errors ?? result))
  assert.deepEqual(result.result.ignoredContextKeys ?? [], [], 'a context key the engine did not use')
  return result.overallResult
}

test('every tool with permissions has claims, and only those', () => {
  assert.deepEqual(Object.keys(policies).sort(), Object.keys(CLAIMS).sort())
})

for (const [tool, claims] of Object.entries(CLAIMS)) {
  const policy = () => policies[tool] ?? assert.fail(`no session policy for ${tool}`)
  // A second into the call, and a second past the deadline of a call that began when the
  // policies were printed.
  const during = printedAt + 1000
  const past = printedAt + claims.timeout_seconds * 1000 + 1000
  // Every call of a tool that asks for approval is approved: its credentials name the approver.
  const approver = claims.approval ? APPROVER : undefined
  for (const request of claims.allowed) {
    const name = `${tool}: ${request.action} on ${request.resource}${request.prefix ? ` (prefix ${request.prefix})` : ''}`
    test(`${name}: allowed for its own tenant during the call`, async () => {
      assert.equal(await decide(tool, policy(), request, 'acme', during, approver), 'Allowed')
    })
    test(`${name}: refused past the ${claims.timeout_seconds} s deadline`, async () => {
      assert.notEqual(await decide(tool, policy(), request, 'acme', past, approver), 'Allowed')
    })
    if ((request.resource + (request.prefix ?? '')).includes('{tenant}')) {
      test(`${name}: refused for another tenant`, async () => {
        assert.notEqual(await decide(tool, policy(), request, 'globex', during, approver), 'Allowed')
      })
    }
    if (request.requires_approval) {
      // The permission has require_approval: the session policy alone refuses credentials that
      // name no approver, whatever the work role grants.
      test(`${name}: allowed with an approver tag (require_approval)`, async () => {
        assert.equal(await decide(tool, policy(), request, 'acme', during, APPROVER), 'Allowed')
      })
      test(`${name}: refused without an approver tag (require_approval)`, async () => {
        assert.notEqual(await decide(tool, policy(), request, 'acme', during, undefined), 'Allowed')
      })
      test(`${name}: refused with an empty approver tag (require_approval)`, async () => {
        assert.notEqual(await decide(tool, policy(), request, 'acme', during, ''), 'Allowed')
      })
    } else if (claims.approval) {
      test(`${name}: allowed without an approver tag (its permission does not require approval)`, async () => {
        assert.equal(await decide(tool, policy(), request, 'acme', during, undefined), 'Allowed')
      })
    }
  }
  for (const request of [...(claims.refused ?? []), ...NEVER]) {
    test(`${tool}: ${request.action} on ${request.resource}: refused, whatever the work role grants`, async () => {
      assert.notEqual(await decide(tool, policy(), request, 'acme', during, approver), 'Allowed')
    })
  }
}
