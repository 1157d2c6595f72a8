package jwtcachetest_test

import (
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/internal/grantstoretest"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

func TestGrants_Conformance(t *testing.T) {
	grantstoretest.Run(t, func(*testing.T) provider.GrantStore { return jwtcachetest.NewGrants() })
}
