package provider_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/provider"
)

func TestRequest_Key(t *testing.T) {
	tests := []struct {
		name string
		r    provider.Request
		want string
	}{
		{"zero", provider.Request{}, "aud=;res=;scope="},
		{"empty values are none", provider.Request{Audience: []string{""}, Scopes: []string{" ", ""}, Resources: []string{}}, "aud=;res=;scope="},
		{"sorted", provider.Request{Scopes: []string{"write", "read"}}, "aud=;res=;scope=read,write"},
		{"de-duplicated", provider.Request{Audience: []string{"b", "a", "b"}}, "aud=a,b;res=;scope="},
		{"scopes split at spaces", provider.Request{Scopes: []string{"write read", " admin "}}, "aud=;res=;scope=admin,read,write"},
		{"escaped", provider.Request{Audience: []string{"https://api.example/a,b;c=d"}, Resources: []string{"urn:x:%+ y"}},
			"aud=https%3A%2F%2Fapi.example%2Fa%2Cb%3Bc%3Dd;res=urn%3Ax%3A%25%2B+y;scope="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Key(); got != tt.want {
				t.Errorf("Key() = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestRequest_KeyDistinct lists requests that look alike and must not share
// a key, or a CacheMap would hand one's token to the other.
func TestRequest_KeyDistinct(t *testing.T) {
	rs := []provider.Request{
		{},
		{Scopes: []string{"read"}},
		{Scopes: []string{"read", "write"}},
		{Scopes: []string{"read,write"}},
		{Scopes: []string{"read;write"}},
		{Scopes: []string{"read+write"}},
		{Audience: []string{"read"}},
		{Resources: []string{"read"}},
		{Audience: []string{"a", "b"}},
		{Audience: []string{"a,b"}},
		{Audience: []string{"a b"}},
		{Audience: []string{"a"}, Scopes: []string{"b"}},
		{Audience: []string{"b"}, Scopes: []string{"a"}},
		{Audience: []string{"a;res=b"}},
		{Audience: []string{"a"}, Resources: []string{"b"}},
		{Audience: []string{"a%2Cb"}},
		{Scopes: []string{"scope="}},
		{Scopes: []string{"aud="}},
	}
	seen := map[string]int{}
	for i, r := range rs {
		k := r.Key()
		if j, ok := seen[k]; ok {
			t.Errorf("Key() of %+v = Key() of %+v = %q; want them distinct", r, rs[j], k)
		}
		seen[k] = i
	}
}

// TestRequest_KeyProperty draws random requests from a small alphabet heavy
// in separators and escapes, so that sets often coincide: Key is equal iff
// the sets are, and ParseKey inverts it.
func TestRequest_KeyProperty(t *testing.T) {
	seed := uint64(20260304)
	rng := rand.New(rand.NewPCG(seed, seed))
	alphabet := []string{"a", "b", ",", ";", "=", "%", "+", "%2C", "a,b", "aud=", ";scope=", "é", "~"}
	value := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(3) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	list := func() []string {
		var vs []string
		for range rng.IntN(4) {
			vs = append(vs, value())
		}
		return vs
	}
	const n = 3000
	rs := make([]provider.Request, n)
	for i := range rs {
		rs[i] = provider.Request{Audience: list(), Scopes: list(), Resources: list()}
		if rng.IntN(4) == 0 && i > 0 { // a permutation of an earlier one
			prev := rs[rng.IntN(i)]
			rs[i] = provider.Request{Audience: shuffled(rng, prev.Audience), Scopes: shuffled(rng, prev.Scopes), Resources: shuffled(rng, prev.Resources)}
		}
	}
	keys := make([]string, n)
	for i, r := range rs {
		keys[i] = r.Key()
		back, err := provider.ParseKey(keys[i])
		if err != nil {
			t.Fatalf("ParseKey(%q) error = %v", keys[i], err)
		}
		if !sameSets(back, r) || back.Key() != keys[i] {
			t.Fatalf("ParseKey(Key(%+v)) = %+v; want the same sets", r, back)
		}
	}
	equalPairs := 0
	for i := range rs {
		for j := range i {
			same := sameSets(rs[i], rs[j])
			if same {
				equalPairs++
			}
			if (keys[i] == keys[j]) != same {
				t.Fatalf("requests %+v and %+v: same sets %v, keys %q and %q (seed %d)", rs[i], rs[j], same, keys[i], keys[j], seed)
			}
		}
	}
	if equalPairs < n/10 {
		t.Errorf("only %d pairs with equal sets among %d requests; want more, or the test checks little", equalPairs, n)
	}
}

func shuffled(rng *rand.Rand, vs []string) []string {
	out := slices.Clone(vs)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if len(out) > 0 && rng.IntN(2) == 0 {
		out = append(out, out[0]) // a duplicate
	}
	return out
}

// sameSets reports whether a and b ask for the same sets, computed apart from
// the package: scopes are space-separated words, empty values are none.
func sameSets(a, b provider.Request) bool {
	words := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			out = append(out, strings.Fields(v)...)
		}
		return out
	}
	return sameSet(a.Audience, b.Audience) && sameSet(a.Resources, b.Resources) && sameSet(words(a.Scopes), words(b.Scopes))
}

func sameSet(a, b []string) bool {
	in := func(vs []string) map[string]bool {
		m := map[string]bool{}
		for _, v := range vs {
			if v != "" {
				m[v] = true
			}
		}
		return m
	}
	ma, mb := in(a), in(b)
	if len(ma) != len(mb) {
		return false
	}
	for v := range ma {
		if !mb[v] {
			return false
		}
	}
	return true
}

func TestParseKey(t *testing.T) {
	r, err := provider.ParseKey("aud=https%3A%2F%2Fapi.example;res=;scope=read,write")
	if err != nil {
		t.Fatalf("ParseKey() error = %v", err)
	}
	want := provider.Request{Audience: []string{"https://api.example"}, Scopes: []string{"read", "write"}}
	if !slices.Equal(r.Audience, want.Audience) || !slices.Equal(r.Scopes, want.Scopes) || r.Resources != nil {
		t.Errorf("ParseKey() = %+v; want %+v", r, want)
	}

	for _, key := range []string{
		"",
		"tenant-a",
		"aud=;res=",
		"aud=;res=;scope=;",
		"res=;aud=;scope=",
		"aud=b,a;res=;scope=",         // not sorted
		"aud=a,a;res=;scope=",         // a duplicate
		"aud=a,;res=;scope=",          // an empty value
		"aud=%2c;res=;scope=",         // lowercase escape
		"aud=%41;res=;scope=",         // an escape QueryEscape would not make
		"aud=a%20b;res=;scope=",       // a space as %20, not +
		"aud=;res=;scope=read+write",  // two scopes written as one
		"aud=;res=;scope=%zz",         // a bad escape
		"aud=a=b;res=;scope=",         // an unescaped separator
		"aud=;res=;scope=read,write ", // a trailing space
	} {
		if r, err := provider.ParseKey(key); err == nil {
			t.Errorf("ParseKey(%q) = %+v; want an error", key, r)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"aud=;res=;scope=", "aud=a,b;res=r;scope=s", "aud=%2C;res=;scope=", "aud=;res=;scope=a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		r, err := provider.ParseKey(key)
		if err != nil {
			return
		}
		if got := r.Key(); got != key {
			t.Errorf("Key(ParseKey(%q)) = %q; want the key back", key, got)
		}
	})
}
