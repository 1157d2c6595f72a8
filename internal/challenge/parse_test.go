package challenge_test

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
)

func TestParse(t *testing.T) {
	type ch = challenge.Challenge
	p := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		values []string
		want   []ch
	}{
		{"bare scheme", []string{"Bearer"}, []ch{{Scheme: "Bearer"}}},
		{"RFC 6750 example", []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`},
			[]ch{{Scheme: "Bearer", Params: p("realm", "example", "error", "invalid_token", "error_description", "The access token expired")}}},
		{"token values, no spaces", []string{`Bearer error=invalid_token,scope=read`},
			[]ch{{Scheme: "Bearer", Params: p("error", "invalid_token", "scope", "read")}}},
		{"bad white space around =", []string{"Bearer error = \"insufficient_scope\" ,\tscope=\"a b\""},
			[]ch{{Scheme: "Bearer", Params: p("error", "insufficient_scope", "scope", "a b")}}},
		{"two challenges in one value", []string{`DPoP algs="ES256 PS256", error="use_dpop_nonce", Bearer realm="api"`},
			[]ch{{Scheme: "DPoP", Params: p("algs", "ES256 PS256", "error", "use_dpop_nonce")}, {Scheme: "Bearer", Params: p("realm", "api")}}},
		{"two values", []string{`Basic realm="x"`, `Bearer error="invalid_token"`},
			[]ch{{Scheme: "Basic", Params: p("realm", "x")}, {Scheme: "Bearer", Params: p("error", "invalid_token")}}},
		{"bare schemes in a list", []string{"Negotiate, Bearer"}, []ch{{Scheme: "Negotiate"}, {Scheme: "Bearer"}}},
		{"token68", []string{"Negotiate a87421000492aa874209af8bc028==, Bearer"},
			[]ch{{Scheme: "Negotiate", Token68: "a87421000492aa874209af8bc028=="}, {Scheme: "Bearer"}}},
		{"escapes in a quoted string", []string{`Bearer error_description="a \"quoted\" \\ word"`},
			[]ch{{Scheme: "Bearer", Params: p("error_description", `a "quoted" \ word`)}}},
		{"names are case-insensitive, first wins", []string{`Bearer ERROR="invalid_token", error="insufficient_scope"`},
			[]ch{{Scheme: "Bearer", Params: p("error", "invalid_token")}}},
		{"RFC 9110's example", []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			[]ch{{Scheme: "Newauth", Params: p("realm", "apps", "type", "1", "title", `Login to "apps"`)}, {Scheme: "Basic", Params: p("realm", "simple")}}},
		{"empty element before a parameter", []string{`Bearer , error="invalid_token"`},
			[]ch{{Scheme: "Bearer", Params: p("error", "invalid_token")}}},
		{"empty elements", []string{` , ,Bearer error="invalid_token",, `},
			[]ch{{Scheme: "Bearer", Params: p("error", "invalid_token")}}},
		{"claims challenge", []string{`Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="`},
			[]ch{{Scheme: "Bearer", Params: p("realm", "", "error", "insufficient_claims", "claims", "eyJhY2Nlc3NfdG9rZW4iOnt9fQ==")}}},
		{"unterminated quote keeps what came before", []string{`Basic realm="a", Bearer error="invalid_tok`},
			[]ch{{Scheme: "Basic", Params: p("realm", "a")}, {Scheme: "Bearer"}}},
		{"garbage", []string{`"Bearer"`}, nil},
		{"scheme glued to a parameter", []string{`Bearer="x"`}, nil},
		{"empty", []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := challenge.Parse(tt.values); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %#v\nwant %#v", tt.values, got, tt.want)
			}
		})
	}
}

func TestParse_Bounds(t *testing.T) {
	got := challenge.Parse([]string{strings.Repeat("Bearer, ", 1000), "Bearer " + strings.Repeat(`a="b", `, 1000)})
	if len(got) > 16 {
		t.Errorf("%d challenges; want at most 16", len(got))
	}
	if got := challenge.Parse([]string{"Bearer " + manyParams(100)}); len(got) != 1 || len(got[0].Params) != 32 {
		t.Errorf("a challenge of 100 parameters parsed as %d challenges, the first with %d parameters; want 1 with 32", len(got), len(got[0].Params))
	}
}

// manyParams returns n distinct parameters.
func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("p" + strconv.Itoa(i) + `="v"`)
	}
	return b.String()
}

// FuzzChallenges: the parser never panics, keeps to its bounds, and reads
// back what it parsed when that is written out again. Seeds are below.
func FuzzChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="example", error="invalid_token", error_description="The access token expired"`,
		`DPoP algs="ES256", error="use_dpop_nonce", Bearer realm="api"`,
		`Negotiate abc==, Bearer error=insufficient_scope, scope="a b"`,
		`Bearer error="insufficient_claims", claims="eyJ9"`,
		`Basic realm="a\"b\\"`, ``, `,,,`, `"`, `Bearer a=`, `x y=z, w`,
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		got := challenge.Parse([]string{v1, v2})
		if len(got) > 16 {
			t.Fatalf("%d challenges; want at most 16", len(got))
		}
		for _, c := range got {
			if c.Scheme == "" || len(c.Params) > 32 || (c.Token68 != "" && c.Params != nil) {
				t.Fatalf("challenge %#v breaks the parser's rules", c)
			}
		}
		// Written out and parsed again, a parse is what it was.
		again := challenge.Parse([]string{format(got)})
		if len(got) < 16 && !reflect.DeepEqual(again, got) {
			t.Fatalf("parse of %q\n      = %#v\nwritten %q\nparsed = %#v", []string{v1, v2}, got, format(got), again)
		}
	})
}

// format writes challenges as one header value, parameters sorted by name.
func format(cs []challenge.Challenge) string {
	var parts []string
	for _, c := range cs {
		s := c.Scheme
		switch {
		case c.Token68 != "":
			s += " " + c.Token68
		case len(c.Params) > 0:
			var ps []string
			for _, k := range slices.Sorted(maps.Keys(c.Params)) {
				v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(c.Params[k])
				ps = append(ps, k+`="`+v+`"`)
			}
			s += " " + strings.Join(ps, ", ")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
