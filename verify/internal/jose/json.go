package jose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Members returns the members of the JSON object b, their values slices of
// b, or why b is not one: invalid JSON, not an object, or a member name twice
// (RFC 7519, section 4, lets a parser refuse that; what encoding/json does,
// keeping the last, would let two parsers read two claim sets). Names match
// exactly, unlike encoding/json's struct fields. It is a fraction of the cost
// of decoding into a map with encoding/json, which a token's verification
// would otherwise spend a sixth of its time in. Its errors read after the
// name of what b is: "header are not valid JSON".
func Members(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		return nil, errors.New("are not valid JSON")
	}
	// From here on, b is valid JSON: no bound needs checking.
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, errors.New("is not a JSON object")
	}
	m := make(map[string]json.RawMessage, 8)
	if i = skipSpace(b, i+1); b[i] == '}' {
		return m, nil
	}
	for {
		end := skipString(b, i)
		name, _ := RawString(b[i:end])
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("has %s twice", Quote(name))
		}
		i = skipSpace(b, skipSpace(b, end)+1) // past the colon
		end = skipValue(b, i)
		m[name] = b[i:end:end]
		if i = skipSpace(b, end); b[i] == '}' {
			return m, nil
		}
		i = skipSpace(b, i+1) // past the comma
	}
}

// skipSpace returns the index of the first byte of b from i on that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the valid JSON string that starts
// at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index just past the valid JSON value that starts at
// b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}

// RawString returns the JSON string raw, a value [Members] returned, and
// whether it is one.
func RawString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // no escapes to undo
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// String returns the string claim name of m, which [Members] returned; "" if
// m has none.
func String(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	s, ok := RawString(raw)
	if !ok {
		return "", fmt.Errorf("%s claim is not a string", name)
	}
	return s, nil
}

// Strings returns the claim name of m, a string or a list of strings; nil if
// m has none. A string is split at spaces if split, else a list of one.
func Strings(m map[string]json.RawMessage, name string, split bool) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	if s, ok := RawString(raw); ok {
		if split {
			return strings.Fields(s), nil
		}
		return []string{s}, nil
	}
	var list []any
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, fmt.Errorf("%s claim is neither a string nor a list", name)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s claim has an element that is not a string", name)
		}
		out = append(out, s)
	}
	return out, nil
}

// maxDate is the last NumericDate Time accepts: 9999-12-31T23:59:59Z.
const maxDate = 253402300799

// Time returns the NumericDate claim name of m (seconds since the epoch, RFC
// 7519, section 2, from 0 to 9999-12-31T23:59:59Z), in UTC, and whether m
// has it.
func Time(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	// A value of a valid JSON object that parses as a float is a number.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !(f >= 0 && f <= maxDate) {
		return time.Time{}, false, fmt.Errorf("%s claim is not a date", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// MediaType returns typ with "application/" put before it if it has no slash
// (RFC 7515, section 4.1.9), or "" for "".
func MediaType(typ string) string {
	if typ == "" || strings.Contains(typ, "/") {
		return typ
	}
	return "application/" + typ
}

// Quote quotes s, a value from a token's header or claims, cut short to 64
// bytes, for an error message.
func Quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// Decode decodes a part of a compact JWS, refusing padding and, strictly,
// trailing bits, so that one token has one spelling. Like encoding/base64,
// it skips line breaks: a caller that must refuse them looks first.
func Decode(part string) ([]byte, error) { return b64.DecodeString(part) }

// b64 is Decode's encoding.
var b64 = base64.RawURLEncoding.Strict()

// Bytes returns the bytes of s without copying them. They must never be
// written: they are only hashed and verified.
func Bytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
