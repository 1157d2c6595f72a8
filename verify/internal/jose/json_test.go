package jose_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

func TestMembers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string // member name to raw value
		wantErr string
	}{
		{"empty", `{}`, map[string]string{}, ""},
		{"white space", " \t\r\n{ \"a\" : 1 , \"b\":\"x\" }\n", map[string]string{"a": "1", "b": `"x"`}, ""},
		{"every kind of value", `{"s":"a\"}b","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"x":[1,{"y":"]"}]},"l":[]}`,
			map[string]string{"s": `"a\"}b"`, "n": "-1.5e3", "t": "true", "f": "false", "z": "null", "o": `{"x":[1,{"y":"]"}]}`, "l": "[]"}, ""},
		{"escaped name", `{"\u0061b":1}`, map[string]string{"ab": "1"}, ""},
		{"names match exactly", `{"Iss":1,"iss":2}`, map[string]string{"Iss": "1", "iss": "2"}, ""},
		{"a name twice", `{"a":1,"a":2}`, nil, `has "a" twice`},
		{"a name twice, once escaped", `{"a":1,"\u0061":2}`, nil, `has "a" twice`},
		{"not JSON", `{"a":1`, nil, "are not valid JSON"},
		{"data after the object", `{"a":1} {}`, nil, "are not valid JSON"},
		{"an array", `[{"a":1}]`, nil, "is not a JSON object"},
		{"a string", `"{}"`, nil, "is not a JSON object"},
		{"empty", ``, nil, "are not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jose.Members([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Members(%q) error = %v; want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Members(%q) error = %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("Members(%q) = %d members; want %d", tt.in, len(got), len(tt.want))
			}
			for name, raw := range tt.want {
				if string(got[name]) != raw {
					t.Errorf("Members(%q)[%q] = %s; want %s", tt.in, name, got[name], raw)
				}
				if cap(got[name]) != len(got[name]) {
					t.Errorf("Members(%q)[%q] has room to grow into the rest of the input", tt.in, name)
				}
			}
		})
	}
}

func TestRawString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"abc"`, "abc", true},
		{`""`, "", true},
		{`"a\u00e9\n\"b"`, "a\u00e9\n\"b", true},
		{`12`, "", false},
		{`null`, "", false},
		{`["a"]`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		got, ok := jose.RawString(json.RawMessage(tt.raw))
		if got != tt.want || ok != tt.ok {
			t.Errorf("RawString(%s) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

// members is Members of in, which must be valid.
func members(t *testing.T, in string) map[string]json.RawMessage {
	t.Helper()
	m, err := jose.Members([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestString(t *testing.T) {
	m := members(t, `{"iss":"https://a","n":1}`)
	if got, err := jose.String(m, "iss"); got != "https://a" || err != nil {
		t.Errorf(`String(iss) = %q, %v; want "https://a", nil`, got, err)
	}
	if got, err := jose.String(m, "sub"); got != "" || err != nil {
		t.Errorf(`String(absent) = %q, %v; want "", nil`, got, err)
	}
	if _, err := jose.String(m, "n"); err == nil || err.Error() != "n claim is not a string" {
		t.Errorf("String(a number) error = %v; want n claim is not a string", err)
	}
}

func TestStrings(t *testing.T) {
	m := members(t, `{"aud":"a b","list":["x","y z"],"mixed":["x",1],"n":3,"obj":{"a":"b"}}`)
	tests := []struct {
		name    string
		split   bool
		want    []string
		wantErr string
	}{
		{"aud", false, []string{"a b"}, ""},
		{"aud", true, []string{"a", "b"}, ""},
		{"list", false, []string{"x", "y z"}, ""},
		{"list", true, []string{"x", "y z"}, ""},
		{"absent", false, nil, ""},
		{"mixed", false, nil, "mixed claim has an element that is not a string"},
		{"n", false, nil, "n claim is neither a string nor a list"},
		{"obj", false, nil, "obj claim is neither a string nor a list"},
	}
	for _, tt := range tests {
		got, err := jose.Strings(m, tt.name, tt.split)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Strings(%s, %v) error = %v; want %q", tt.name, tt.split, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || (got == nil) != (tt.want == nil) {
			t.Errorf("Strings(%s, %v) = %q, %v; want %q", tt.name, tt.split, got, err, tt.want)
		}
	}
}

func TestTime(t *testing.T) {
	m := members(t, `{"exp":1700000000,"frac":1700000000.25,"zero":0,"max":253402300799,
		"past_max":253402300800,"neg":-1,"str":"1700000000","exp10":1.7e9,"big":1e400}`)
	tests := []struct {
		name    string
		want    time.Time
		has     bool
		wantErr bool
	}{
		{"exp", time.Unix(1_700_000_000, 0).UTC(), true, false},
		{"frac", time.Unix(1_700_000_000, 250_000_000).UTC(), true, false},
		{"zero", time.Unix(0, 0).UTC(), true, false},
		{"max", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true, false},
		{"exp10", time.Unix(1_700_000_000, 0).UTC(), true, false},
		{"absent", time.Time{}, false, false},
		{"past_max", time.Time{}, false, true},
		{"neg", time.Time{}, false, true},
		{"str", time.Time{}, false, true},
		{"big", time.Time{}, false, true},
	}
	for _, tt := range tests {
		got, has, err := jose.Time(m, tt.name)
		if (err != nil) != tt.wantErr || has != tt.has || !got.Equal(tt.want) {
			t.Errorf("Time(%s) = %v, %v, %v; want %v, %v, error %v", tt.name, got, has, err, tt.want, tt.has, tt.wantErr)
		}
		if err != nil && err.Error() != tt.name+" claim is not a date" {
			t.Errorf("Time(%s) error = %q; want %q", tt.name, err, tt.name+" claim is not a date")
		}
		if has && got.Location() != time.UTC {
			t.Errorf("Time(%s) is in %v; want UTC", tt.name, got.Location())
		}
	}
}

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"JWT":                "application/JWT",
		"at+jwt":             "application/at+jwt",
		"application/at+jwt": "application/at+jwt",
		"text/plain":         "text/plain",
	} {
		if got := jose.MediaType(in); got != want {
			t.Errorf("MediaType(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got, want := jose.Quote("kid\n1"), `"kid\n1"`; got != want {
		t.Errorf("Quote(short) = %s; want %s", got, want)
	}
	long := strings.Repeat("x", 100)
	if got, want := jose.Quote(long), `"`+long[:64]+`"...`; got != want {
		t.Errorf("Quote(100 bytes) = %s; want %s", got, want)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"YQ", "a", true},
		{"_-8", "\xff\xef", true},
		{"YQ==", "", false}, // padding
		{"YR", "", false},   // trailing bits set: a second spelling of "a"
		{"Y+Q", "", false},  // standard alphabet
		{"Y", "", false},
	}
	for _, tt := range tests {
		got, err := jose.Decode(tt.in)
		if (err == nil) != tt.ok || string(got) != tt.want {
			t.Errorf("Decode(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestBytes(t *testing.T) {
	s := "signing input"
	if got := jose.Bytes(s); string(got) != s || len(got) != len(s) {
		t.Errorf("Bytes(%q) = %q", s, got)
	}
	if got := jose.Bytes(""); len(got) != 0 {
		t.Errorf("Bytes(\"\") = %q; want empty", got)
	}
}
