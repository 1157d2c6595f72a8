// A real OAuth2 authorization server for jwtcache's integration tests:
// oauth2-mock-server on 127.0.0.1, issuing RS256 JWTs over client credentials
// and publishing its JWKS at /jwks. It speaks a line protocol with the test:
//   stdout: "READY <issuer URL>", then "ISSUED" for every token signed,
//           "STOPPED" and "STARTED" after those commands;
//   stdin:  "stop" (close the listener, keep the keys), "start" (listen again
//           on the same port). It exits when stdin closes.
// TOKEN_LIFETIME sets the tokens' lifetime in seconds (default 60).
import { OAuth2Server } from 'oauth2-mock-server';
import readline from 'node:readline';

const lifetime = Number(process.env.TOKEN_LIFETIME || 60);
const host = '127.0.0.1';
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeTokenSigning', (token) => {
  token.payload.exp = token.payload.iat + lifetime;
  console.log('ISSUED');
});
await server.start(0, host);
const port = server.address().port;
server.issuer.url = `http://${host}:${port}`;
console.log(`READY ${server.issuer.url}`);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  if (line === 'stop') {
    await server.stop();
    console.log('STOPPED');
  } else if (line === 'start') {
    await server.start(port, host);
    console.log('STARTED');
  }
});
lines.on('close', async () => {
  await server.stop().catch(() => {});
  process.exit(0);
});
