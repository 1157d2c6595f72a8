package provider

import "time"

// SignAssertion makes and signs one client assertion of auth, a
// [PrivateKeyJWT] or a [ClientSecretJWT], for the benchmarks.
func SignAssertion(auth ClientAuth, aud string, now time.Time) (string, error) {
	return auth.(*signedAssertion).sign(aud, now)
}

// DiscoveryIdle reports whether c's Issuer runs no discovery: the outcome of
// the last, if any, is published.
func DiscoveryIdle(c *Client) bool { return c.issuer == nil || c.issuer.src.Idle() }
