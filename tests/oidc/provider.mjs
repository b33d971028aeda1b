// The authorization server of the OIDC suite: oidc-provider (OpenID Certified, maintained, from the
// npm registry) configured as a plain OAuth 2.1 server for one MCP gateway.
//
//   node provider.mjs CONFIG.json
//
// CONFIG (written by harness/setup.py) names the issuer and port, the key file, the resource
// servers (RFC 8707 resource indicators) with their scopes, the client-credentials clients, the
// approval page's web client and the accounts of the login page, each with the groups its tokens
// carry.
//
// Key rotation is a restart of the provider with a new `jwks` configuration: on SIGHUP the key file
// is read again and a new Provider is built from it and the same configuration, and it answers
// every request from then on (same port, same issuer; tokens and registrations made before are
// forgotten, as after a restart). After each (re)start STATE.json says which keys it serves
// (`generation`, `kids`), so a test knows when the rotation has happened.
//
// Every request is logged to stdout as one JSON line (method, path, status), so a test can see who
// fetched the JWKS.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let generation = 0;

function groupsOf(token) {
  if (token.accountId) {
    return config.accounts[token.accountId]?.groups ?? [];
  }
  return config.clients.find((c) => c.client_id === token.clientId)?.groups ?? [];
}

function build() {
  const { keys } = JSON.parse(readFileSync(config.keys_file, 'utf8'));
  const provider = new Provider(config.issuer, {
    jwks: { keys },
    clients: [
      ...config.clients.map((c) => ({
        client_id: c.client_id,
        client_secret: c.client_secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      })),
      // The gateway's approval page: a web client signing people in with authorization code +
      // PKCE, authenticated at the token endpoint with HTTP Basic.
      ...(config.page_clients ?? []).map((c) => ({
        client_id: c.client_id,
        client_secret: c.client_secret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: c.redirect_uris,
        token_endpoint_auth_method: 'client_secret_basic',
      })),
    ],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_post',
    },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    // OAuth 2.1: the authorization code flow only (no implicit or hybrid responses).
    responseTypes: ['code'],
    // The resource servers' scopes are announced (and may be registered by clients) beside
    // OpenID's own.
    scopes: ['openid', 'offline_access', ...new Set(Object.values(config.resources).map((r) => r.scope))],
    cookies: { keys: [config.cookie_key] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      // Open dynamic client registration (RFC 7591), as the MCP authorization spec expects.
      registration: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A token is for the resource its request names (no default: without `resource` the
        // access token is opaque, for the userinfo endpoint only).
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        // The authorization code grant's token request may leave `resource` out and get a token
        // for the one resource the authorization was for.
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          const server = config.resources[resourceIndicator];
          if (!server) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope: server.scope,
            audience: resourceIndicator,
            accessTokenTTL: config.access_token_ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => ({ groups: groupsOf(token) }),
    findAccount: (_ctx, id) => {
      if (!config.accounts[id]) {
        return undefined;
      }
      return { accountId: id, claims: () => ({ sub: id }) };
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: config.access_token_ttl,
      ClientCredentials: config.access_token_ttl,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
      Grant: 600,
    },
  });
  provider.on('server_error', (_ctx, err) => {
    console.error(JSON.stringify({ event: 'server_error', message: String(err?.stack ?? err) }));
  });
  generation += 1;
  const state = { generation, kids: keys.map((k) => k.kid) };
  const tmp = `${config.state_file}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, config.state_file);
  console.log(JSON.stringify({ event: 'started', ...state }));
  return provider.callback();
}

let handle = build();

process.on('SIGHUP', () => {
  try {
    handle = build();
  } catch (err) {
    // The provider keeps answering with the keys it had; the test waiting for the new
    // generation fails and says so.
    console.error(JSON.stringify({ event: 'restart_failed', message: String(err?.stack ?? err) }));
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

const server = createServer((req, res) => {
  res.on('finish', () => {
    console.log(JSON.stringify({
      event: 'request',
      method: req.method,
      path: req.url.split('?')[0],
      status: res.statusCode,
      generation,
    }));
  });
  handle(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'listening', port: config.port }));
});
