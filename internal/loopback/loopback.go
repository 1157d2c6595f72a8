// Package loopback tells the hosts to which plain HTTP cannot be overheard.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host, a URL's host name (without port or brackets), is
// a loopback host: localhost (with or without the root's trailing dot), or an
// address in 127.0.0.0/8 or ::1. Other names under .localhost are not: the
// resolver Go uses may send them anywhere.
func Host(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
