// A real OpenID provider for the provider package's tests: oidc-provider
// (npm) on 127.0.0.1, on a free port, configured from the JSON file named by
// the first argument (written by startOIDC in ../../oidcharness_test.go,
// which documents every field). Its clients are registered for the
// client_credentials grant and the token exchange grant (RFC 8693, below);
// the JWT bearer grant (RFC 7523, below) is there for those that list it in
// their grant_types. They authenticate with any of client_secret_basic,
// client_secret_post, client_secret_jwt, private_key_jwt, tls_client_auth and
// self_signed_tls_client_auth, or none (a public client, which sends its
// client_id only); introspection and revocation are enabled too.
//
// Line protocol with the test:
//   stdout: "MTLS <base URL>"   the mTLS endpoint aliases' origin, before READY,
//                               only with mtlsEndpointAliases;
//           "READY <issuer>"    once listening;
//           "ISSUED <client_id> <grant_type>"   for every token issued;
//           "REFUSED <client_id|-> <grant_type|-> <error> <detail>"   for
//                               every token request answered with an OAuth
//                               error: its code, and the reason (the rest of
//                               the line), which invalid_client responses
//                               do not tell;
//           "SYNCED <n>"        in answer to "sync <n>";
//           "ROTATED <step>"    in answer to "rotate <step>" (see rotation);
//           "GRANT <account> <grant_id> <refresh_token>"   in answer to
//                               "grant <client_id> <account>" (see
//                               refreshTokens);
//           "REVOKED <grant_id>"   in answer to "revoke <grant_id>";
//           "GRANTREVOKED <grant_id>"   for every grant oidc-provider
//                               revokes (reuse of a spent refresh token);
//           "REFRESHED <account> <grant_id>"   for every refresh token grant
//                               that succeeded, after its ISSUED line.
//   stdin:  "sync <n>": answered with "SYNCED <n>" once every earlier line is
//           written; "rotate <step>": a key rotation step, with keyRotation;
//           "grant <client_id> <account>": a grant minted for the account, as
//           an authorization code flow would leave it, with cfg.refreshTokens;
//           "revoke <grant_id>": the grant and its tokens revoked, as an
//           administrator would. A token response is sent after its ISSUED line is
//           written (writes to a pipe are synchronous on Linux), so a test
//           that syncs after a response has read that response's line.
//           The server exits when stdin closes.
// Diagnostics (configuration errors, server errors) go to stderr.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import readline from 'node:readline';
import { promisify } from 'node:util';

// The RSA key is generated on the thread pool while the modules load.
const rsaKey = promisify(crypto.generateKeyPair)('rsa', { modulusLength: 2048 });
const [{ default: Provider, errors }, jose] = await Promise.all([import('oidc-provider'), import('jose')]);

const host = '127.0.0.1';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const resources = new Map((cfg.resources ?? []).map((r) => [r.identifier, r]));
const clientCAs = (cfg.tls?.clientCAs ?? []).map((pem) => new crypto.X509Certificate(pem));

// The provider's signing keys, new on every start: RS256 (the default for
// JWT access tokens) and ES256.
const signingKeys = [
  { ...(await rsaKey).privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'rs256' },
  { ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'es256' },
];

// Key rotation (cfg.keyRotation), for the tests of a verifier through an
// issuer's rotation of its RS256 key. A second RS256 key, "rs256-next", is in
// the keystore from the start, but neither published nor used until the test
// says, one step at a time, on stdin:
//   "rotate publish"   the jwks_uri lists it beside the current keys;
//   "rotate sign"      JWT access tokens are signed with it;
//   "rotate withdraw"  the jwks_uri no longer lists "rs256", the old key;
// each answered with "ROTATED <step>" once in force. Without keyRotation the
// keystore and the jwks_uri are oidc-provider's, of signingKeys.
const rotation = cfg.keyRotation ? (() => {
  const next = {
    ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
    alg: 'RS256', use: 'sig', kid: 'rs256-next',
  };
  const published = new Set(['rs256', 'es256']);
  let signWith = 'rs256';
  const steps = {
    publish: () => published.add(next.kid),
    sign: () => { signWith = next.kid; },
    withdraw: () => published.delete('rs256'),
  };
  return {
    keys: [next],
    // signKid is the kid of the key that signs JWTs with alg.
    signKid: (alg) => (alg === 'RS256' ? signWith : undefined),
    // serve answers a request for the key set, relative to the issuer, with
    // the published keys, and reports whether it was one.
    serve(req, res) {
      if (req.method !== 'GET' || req.url.split('?')[0] !== '/jwks') return false;
      const keys = [...signingKeys, next].filter((k) => published.has(k.kid)).map(publicJWK);
      res.writeHead(200, { 'Content-Type': 'application/jwk-set+json' }).end(JSON.stringify({ keys }));
      return true;
    },
    // step runs a step; it reports whether there is one of that name.
    step(name) {
      if (!Object.hasOwn(steps, name)) return false;
      steps[name]();
      return true;
    },
  };
})() : undefined;

function publicJWK({ d, p, q, dp, dq, qi, ...pub }) {
  return pub;
}
const publicKeys = jose.createLocalJWKSet({
  keys: [...signingKeys, ...(rotation?.keys ?? [])].map(publicJWK),
});

// Listen first: the issuer names the port.
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(server.address().port));
  });
}
const tlsOptions = (requestCert) => ({
  cert: cfg.tls.cert,
  key: cfg.tls.key,
  // The client CAs are not given to TLS (`ca`): the certificate request then
  // names no CA, so that clients send self-signed certificates too, and
  // certificateAuthorized checks the PKI ones against clientCAs.
  requestCert,
  rejectUnauthorized: false,
});
const aliases = Boolean(cfg.mtlsEndpointAliases);
if (aliases && !cfg.tls) {
  throw new Error('mtlsEndpointAliases needs tls');
}
const main = cfg.tls ? https.createServer(tlsOptions(!aliases)) : http.createServer();
const mtls = aliases ? https.createServer(tlsOptions(true)) : undefined;
const origin = (scheme, port) => `${scheme}://${host}:${port}`;
const mainOrigin = origin(cfg.tls ? 'https' : 'http', await listen(main));
const mtlsOrigin = mtls ? origin('https', await listen(mtls)) : undefined;
const issuerPath = (cfg.issuerPath ?? '').replace(/\/$/, '');
const issuer = mainOrigin + issuerPath;

// The client certificate of the request's TLS connection, if any.
function getCertificate(ctx) {
  return ctx.req.socket.getPeerX509Certificate?.() ?? undefined;
}

// tls_client_auth: the certificate must be issued and signed by one of
// clientCAs (no intermediates) and be within its validity period.
function certificateAuthorized(ctx) {
  const cert = getCertificate(ctx);
  const now = Date.now();
  return Boolean(cert)
    && now >= Date.parse(cert.validFrom) && now <= Date.parse(cert.validTo)
    && clientCAs.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
}

// The certificate's subject as an RFC 4514 string (Go's pkix.Name.String()
// for names without special characters) and its subjectAltName entries.
function subjectDN(cert) {
  return cert.subject.split('\n').reverse().join(',');
}
function altNames(cert, prefix) {
  return (cert.subjectAltName ?? '').split(', ')
    .filter((entry) => entry.startsWith(prefix))
    .map((entry) => entry.slice(prefix.length).replace(/^"(.*)"$/, '$1'));
}
function certificateSubjectMatches(ctx, property, expected) {
  const cert = getCertificate(ctx);
  switch (property) {
    case 'tls_client_auth_subject_dn':
      return subjectDN(cert) === expected;
    case 'tls_client_auth_san_dns':
      return altNames(cert, 'DNS:').includes(expected);
    case 'tls_client_auth_san_uri':
      return altNames(cert, 'URI:').includes(expected);
    case 'tls_client_auth_san_ip':
      return altNames(cert, 'IP Address:').includes(expected);
    case 'tls_client_auth_san_email':
      return altNames(cert, 'email:').includes(expected);
    default:
      return false;
  }
}

function resourceServerInfo(r) {
  return {
    scope: r.scope ?? '',
    audience: r.audience || undefined,
    accessTokenTTL: r.accessTokenTTL || undefined,
    accessTokenFormat: r.accessTokenFormat || 'jwt',
    ...(r.accessTokenFormat === 'opaque' ? {} : {
      jwt: { sign: { alg: r.signingAlg || 'RS256', kid: rotation?.signKid(r.signingAlg || 'RS256') } },
    }),
  };
}

const scopes = new Set(['openid']);
for (const { scope } of [...(cfg.clients ?? []), ...resources.values()]) {
  for (const s of (scope ?? '').split(' ').filter(Boolean)) scopes.add(s);
}

// Refresh tokens (cfg.refreshTokens: { rotate, resource, scope }): the
// grants "grant" mints are for the resource (whose entry in cfg.resources
// sets the access tokens' format and TTL) with the scope, plus
// offline_access; with rotate, every refresh spends the refresh token and
// issues a new one, and a spent one presented again revokes the grant
// (oidc-provider's reuse detection). The clients that refresh list
// refresh_token among their grant_types.
const refreshTokens = cfg.refreshTokens;
// offline_access is what enables oidc-provider's refresh_token grant.
if (refreshTokens) scopes.add('offline_access');

const provider = new Provider(issuer, {
  rotateRefreshToken: Boolean(refreshTokens?.rotate),
  clients: (cfg.clients ?? []).map((c) => ({
    grant_types: ['client_credentials', TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
    ...c,
  })),
  clientAuthMethods: [
    'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
    ...(cfg.tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ],
  jwks: { keys: [...signingKeys, ...(rotation?.keys ?? [])] },
  scopes: [...scopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    // DPoP (RFC 9449): proofs are accepted from any client (and required of
    // those with dpop_bound_access_tokens); with dpopNonces, every proof
    // must carry a nonce the provider issued (400 use_dpop_nonce otherwise).
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => Boolean(cfg.dpopNonces),
    },
    revocation: { enabled: true },
    mTLS: {
      enabled: Boolean(cfg.tls),
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      getCertificate,
      certificateAuthorized,
      certificateSubjectMatches,
    },
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(ctx, indicator) {
        const r = resources.get(indicator);
        if (!r) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return resourceServerInfo(r);
      },
    },
  },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || cfg.accessTokenTTL || 600,
  },
  formats: {
    customizers: {
      // An exchanged token is about the subject token's subject, a JWT
      // bearer grant's about the assertion's (issueAccessToken).
      async jwt(ctx, token, jwt) {
        if (ctx?.state?.grantSubject) {
          jwt.payload.sub = ctx.state.grantSubject;
        }
      },
    },
  },
  discovery: mtlsOrigin ? {
    mtls_endpoint_aliases: {
      token_endpoint: `${mtlsOrigin}${issuerPath}/token`,
      introspection_endpoint: `${mtlsOrigin}${issuerPath}/token/introspection`,
      revocation_endpoint: `${mtlsOrigin}${issuerPath}/token/revocation`,
    },
  } : {},
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// Token exchange (RFC 8693), impersonation only (no actor_token). The
// subject_token is either
//   - a token this provider issued (subject_token_type access_token): an
//     opaque one, looked up, or a JWT one, verified with the provider's keys;
//   - or a JWT (subject_token_type jwt or access_token) signed by one of the
//     trusted issuers of tokenExchange.trustedIssuers (its "iss" selects
//     the keys), or by this provider; it must carry "exp".
// The issued token is for the one resource (or the resource whose identifier
// or audience is the audience) requested, a JWT about the subject's "sub"
// when that resource's format is jwt; without resource or audience, an
// opaque token. Its lifetime is the resource's TTL (else accessTokenTTL),
// cut to the subject token's remaining life. Errors follow RFC 8693 2.2.2:
// invalid_request for a missing or bad parameter or an invalid subject
// token, invalid_target for an unknown target.
const trustedIssuers = new Map((cfg.tokenExchange?.trustedIssuers ?? [])
  .map(({ issuer: iss, jwks }) => [iss, jose.createLocalJWKSet(jwks)]));

async function verifySubjectJWT(token) {
  let iss;
  try {
    ({ iss } = jose.decodeJwt(token));
  } catch {
    throw new errors.InvalidRequest('subject_token is not a JWT');
  }
  const keys = iss === provider.issuer ? publicKeys : trustedIssuers.get(iss);
  if (!keys) {
    throw new errors.InvalidRequest('subject_token issuer is not trusted');
  }
  try {
    const { payload } = await jose.jwtVerify(token, keys, {
      issuer: iss,
      requiredClaims: ['exp', 'sub'],
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
    });
    return { sub: payload.sub, exp: payload.exp };
  } catch (err) {
    throw new errors.InvalidRequest(`subject_token is invalid: ${err.message}`);
  }
}

async function verifySubject(token, type) {
  if (type !== ACCESS_TOKEN_TYPE && type !== JWT_TYPE) {
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }
  if (token.split('.').length === 3) {
    return verifySubjectJWT(token);
  }
  if (type === ACCESS_TOKEN_TYPE) {
    const found = await provider.ClientCredentials.find(token) ?? await provider.AccessToken.find(token);
    if (found && !found.isExpired) {
      return { sub: found.accountId ?? found.clientId, exp: found.exp };
    }
  }
  throw new errors.InvalidRequest('subject_token is invalid');
}

function one(name, value) {
  const values = [value ?? []].flat();
  if (values.length > 1) {
    throw new errors.InvalidTarget(`only one ${name} is supported`);
  }
  return values[0];
}

async function tokenExchange(ctx) {
  const { params } = ctx.oidc;
  for (const name of ['subject_token', 'subject_token_type']) {
    if (!params[name]) {
      throw new errors.InvalidRequest(`missing required parameter '${name}'`);
    }
  }
  if (params.actor_token || params.actor_token_type) {
    throw new errors.InvalidRequest('actor_token is not supported');
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  const subject = await verifySubject(params.subject_token, params.subject_token_type);
  const now = Math.floor(Date.now() / 1000);
  if (subject.exp <= now) {
    throw new errors.InvalidRequest('subject_token is expired');
  }
  await issueAccessToken(ctx, subject.sub, subject.exp, { issued_token_type: ACCESS_TOKEN_TYPE });
}

// issueAccessToken answers ctx, a grant's request, with an access token about
// sub, that expires by notAfter (seconds since the epoch) at the latest: for
// the one resource (or the resource whose identifier or audience is the
// audience) requested, a JWT when that resource's format is jwt; without
// resource or audience, an opaque token. The response's body has extra's
// fields too.
async function issueAccessToken(ctx, sub, notAfter, extra) {
  const { params, client } = ctx.oidc;
  const now = Math.floor(Date.now() / 1000);
  const resource = one('resource', params.resource);
  const audience = one('audience', params.audience);
  if (resource && audience) {
    throw new errors.InvalidTarget('only one of resource and audience is supported');
  }
  let target;
  if (resource) {
    target = resources.get(resource);
  } else if (audience) {
    target = resources.get(audience)
      ?? [...resources.values()].find((r) => r.audience === audience);
  }
  if ((resource || audience) && !target) {
    throw new errors.InvalidTarget(`unknown ${resource ? 'resource' : 'audience'} ${resource || audience}`);
  }

  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  const allowed = new Set((target?.scope ?? [...scopes].join(' ')).split(' '));
  const scope = requested.filter((s) => allowed.has(s)).join(' ') || undefined;
  // iat and exp are set here, not by oidc-provider (which reads the clock
  // twice), so that exp never passes notAfter (the subject token's).
  const life = Math.min(target?.accessTokenTTL || cfg.accessTokenTTL || 600, notAfter - now);
  const token = new provider.ClientCredentials({
    client,
    scope,
    iat: now,
    exp: now + life,
    expiresIn: life,
  });
  if (target) {
    token.resourceServer = new provider.ResourceServer(target.identifier, resourceServerInfo(target));
  }
  if (client.tlsClientCertificateBoundAccessTokens) {
    const cert = getCertificate(ctx);
    if (!cert) {
      throw new errors.InvalidGrant('mutual TLS client certificate not provided');
    }
    token.setThumbprint('x5t', cert);
  }
  ctx.state.grantSubject = sub;
  ctx.oidc.entity('ClientCredentials', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    ...extra,
    token_type: token.tokenType,
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : {}),
  };
}

provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
  'audience', 'resource', 'scope', 'requested_token_type',
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
], ['audience', 'resource']);

// The JWT bearer grant (RFC 7523, section 2.1), with or without client
// authentication (section 3.1), for the clients that list it in their
// grant_types. The assertion must be a JWT signed by one of the issuers of
// jwtBearer.trustedIssuers (its "iss" selects the keys), for this provider
// (its aud the issuer or the token endpoint, RFC 7523 section 3), with sub,
// exp in the future and a jti this provider has not seen from that issuer
// (section 3, item 7): a replayed assertion is refused. Any of these wrong is
// invalid_grant (section 3.1). The token is issued as a token exchange's
// (issueAccessToken), about the assertion's sub.
const assertionIssuers = new Map((cfg.jwtBearer?.trustedIssuers ?? [])
  .map(({ issuer: iss, jwks }) => [iss, jose.createLocalJWKSet(jwks)]));
// seenAssertions holds the jti of every assertion accepted, by issuer, until
// its exp.
const seenAssertions = new Map();

async function jwtBearer(ctx) {
  const { assertion } = ctx.oidc.params;
  if (!assertion) {
    throw new errors.InvalidRequest("missing required parameter 'assertion'");
  }
  let iss;
  try {
    ({ iss } = jose.decodeJwt(assertion));
  } catch {
    throw new errors.InvalidGrant('assertion is not a JWT');
  }
  const keys = assertionIssuers.get(iss);
  if (!keys) {
    throw new errors.InvalidGrant('assertion issuer is not trusted');
  }
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(assertion, keys, {
      issuer: iss,
      audience: [provider.issuer, ctx.oidc.urlFor('token')],
      requiredClaims: ['exp', 'sub', 'jti'],
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
    }));
  } catch (err) {
    throw new errors.InvalidGrant(`assertion is invalid: ${err.message}`);
  }
  const now = Math.floor(Date.now() / 1000);
  for (const [key, exp] of seenAssertions) {
    if (exp < now) seenAssertions.delete(key);
  }
  const key = JSON.stringify([iss, payload.jti]);
  if (seenAssertions.has(key)) {
    throw new errors.InvalidGrant('assertion jti was already used');
  }
  seenAssertions.set(key, payload.exp);
  await issueAccessToken(ctx, payload.sub, Infinity, {});
}

provider.registerGrantType(JWT_BEARER, jwtBearer, ['assertion', 'audience', 'resource', 'scope'], ['audience', 'resource']);

provider.on('grant.success', (ctx) => {
  console.log(`ISSUED ${ctx.oidc.client.clientId} ${ctx.oidc.params.grant_type}`);
  if (ctx.oidc.params.grant_type === 'refresh_token') {
    const rt = ctx.oidc.entities.RefreshToken;
    console.log(`REFRESHED ${rt.accountId} ${rt.grantId}`);
  }
});

// A grant revoked by oidc-provider itself: on reuse of a spent refresh token.
provider.on('grant.revoked', (ctx, grantId) => {
  console.log(`GRANTREVOKED ${grantId}`);
});

// mintGrant returns a grant for account, by client, and its first refresh
// token, as an authorization code flow with consent would leave them.
async function mintGrant(clientId, account) {
  const client = await provider.Client.find(clientId);
  if (!client || !refreshTokens) throw new Error(`cannot mint a grant for ${clientId}`);
  const grant = new provider.Grant({ clientId, accountId: account });
  grant.addOIDCScope('offline_access');
  grant.addResourceScope(refreshTokens.resource, refreshTokens.scope ?? '');
  const grantId = await grant.save();
  const rt = new provider.RefreshToken({
    client,
    accountId: account,
    grantId,
    gty: 'authorization_code',
    scope: ['offline_access', refreshTokens.scope].filter(Boolean).join(' '),
    resource: refreshTokens.resource,
    expiresWithSession: false,
    iiat: Math.floor(Date.now() / 1000),
  });
  return { grantId, value: await rt.save() };
}
provider.on('grant.error', (ctx, err) => {
  const detail = String(err.error_detail ?? err.error_description ?? '').replace(/\s+/g, ' ');
  console.log(`REFUSED ${ctx.oidc.client?.clientId ?? '-'} ${ctx.oidc.params?.grant_type ?? '-'} ${err.message} ${detail}`);
});
provider.on('server_error', (ctx, err) => {
  console.error('oidc-provider server_error:', err);
});

// Invalid client metadata would otherwise surface only as invalid_client on
// the first request; fail the start instead.
for (const { client_id: id } of cfg.clients ?? []) {
  try {
    if (!await provider.Client.find(id)) throw new Error('not found');
  } catch (err) {
    console.error(`client ${id}: ${err.message}${err.error_description ? `: ${err.error_description}` : ''}`);
    process.exit(1);
  }
}

// The issuer's path, if any, is mounted: oidc-provider routes are relative to
// it, and urlFor derives the mount from req.originalUrl. The RFC 8414
// location of the metadata for a path issuer is served too.
const callback = provider.callback();
function handler(req, res) {
  if (issuerPath) {
    const rfc8414 = `/.well-known/oauth-authorization-server${issuerPath}`;
    req.originalUrl = req.url;
    if (req.url === rfc8414 || req.url.startsWith(`${rfc8414}?`)) {
      req.url = `/.well-known/oauth-authorization-server${req.url.slice(rfc8414.length)}`;
      req.originalUrl = issuerPath + req.url;
    } else if (req.url === issuerPath || req.url.startsWith(`${issuerPath}/`)) {
      req.url = req.url.slice(issuerPath.length) || '/';
    } else {
      res.writeHead(404).end();
      return;
    }
  }
  if (rotation?.serve(req, res)) return;
  callback(req, res);
}
main.on('request', handler);
mtls?.on('request', handler);

if (mtlsOrigin) console.log(`MTLS ${mtlsOrigin}`);
console.log(`READY ${issuer}`);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const [command, arg, arg2] = line.split(' ');
  if (command === 'sync') console.log(`SYNCED ${arg}`);
  if (command === 'rotate' && rotation?.step(arg)) console.log(`ROTATED ${arg}`);
  try {
    if (command === 'grant') {
      const { grantId, value } = await mintGrant(arg, arg2);
      console.log(`GRANT ${arg2} ${grantId} ${value}`);
    }
    if (command === 'revoke') {
      await Promise.all([
        provider.RefreshToken.revokeByGrantId(arg),
        provider.AccessToken.revokeByGrantId(arg),
        provider.Grant.adapter.destroy(arg),
      ]);
      console.log(`REVOKED ${arg}`);
    }
  } catch (err) {
    console.error(`${command}: ${err.stack}`);
  }
});
lines.on('close', () => process.exit(0));
