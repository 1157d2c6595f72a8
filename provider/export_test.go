package provider

import "time"

// SignAssertion makes and signs one client assertion of auth, a
// [PrivateKeyJWT] or a [ClientSecretJWT], for the benchmarks.
func SignAssertion(auth ClientAuth, aud string, now time.Time) (string, error) {
	return auth.(*signedAssertion).sign(aud, now)
}
