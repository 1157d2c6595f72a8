// Package clean makes text from a server fit for an error message.
package clean

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s, text from a server, fit for an error message: control and
// invalid characters dropped, then each secret replaced by "[redacted]" (in
// that order, so that a secret echoed with a control character inside it is
// still caught), and at most limit bytes long, cut at a character's start.
func Text(s string, limit int, secrets ...string) string {
	s = strings.Map(func(c rune) rune {
		if c == utf8.RuneError || !unicode.IsPrint(c) {
			return -1
		}
		return c
	}, s)
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
