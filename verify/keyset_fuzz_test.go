package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// FuzzKeySetDocument serves arbitrary bytes as a key set: the key set must
// never panic, and a set it accepts has only public asymmetric keys, with
// unique kids.
func FuzzKeySetDocument(f *testing.F) {
	f.Add(ksDoc(f, "k1", "k2"))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","kid":"o","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"a","crv":"P-256","x":"AA","y":"AA","d":null}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"keys":{}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tr := &ksTransport{body: doc}
		s, err := verify.NewKeySet("http://127.0.0.1/jwks",
			verify.HTTPClient(&http.Client{Transport: tr}), verify.Clock(ksNewClock().Now))
		if err != nil {
			t.Fatal(err)
		}
		kids := ksKIDs(doc)
		ctx := context.Background()
		accepted := false
		for _, kid := range append(kids, "") {
			k, err := s.Key(ctx, kid)
			switch {
			case errors.Is(err, verify.ErrKeySetStale):
				if !errors.Is(err, verify.ErrKeySetRefused) {
					t.Fatalf("Key(%q) error = %v; want ErrKeySetRefused", kid, err)
				}
				return // refused
			case errors.Is(err, verify.ErrKeySetUnknownKID):
				accepted = true
				continue
			case err != nil:
				t.Fatalf("Key(%q) error = %v", kid, err)
			}
			accepted = true
			if got := k.KeyID(); got != kid {
				t.Errorf("Key(%q).KeyID() = %q", kid, got)
			}
			switch k.KeyType() {
			case "RSA", "EC", "OKP":
			default:
				t.Errorf("Key(%q).KeyType() = %q; want an asymmetric type", kid, k.KeyType())
			}
			if private, err := jwk.IsPrivateKey(k); err != nil || private {
				t.Errorf("Key(%q) is private (%v)", kid, err)
			}
		}
		if !accepted {
			return
		}
		if got := s.Stats().Keys; got == 0 {
			t.Errorf("accepted a set with no keys")
		}
		seen := map[string]bool{}
		for _, kid := range kids {
			if _, err := s.Key(ctx, kid); err == nil {
				if seen[kid] {
					t.Errorf("accepted a set with two keys with kid %q", kid)
				}
				seen[kid] = true
			}
		}
	})
}

// ksKIDs returns the kids of the keys of a JWK set document that are of a
// type the key set knows, as far as the standard library reads it, duplicates
// included.
func ksKIDs(doc []byte) []string {
	var set struct {
		Keys []struct {
			Kty any `json:"kty"`
			Kid any `json:"kid"`
		} `json:"keys"`
	}
	if json.Unmarshal(doc, &set) != nil {
		return nil
	}
	var kids []string
	for _, k := range set.Keys {
		if kty := k.Kty; kty != "RSA" && kty != "EC" && kty != "OKP" {
			continue
		}
		if s, ok := k.Kid.(string); ok {
			kids = append(kids, s)
		}
	}
	return kids
}
