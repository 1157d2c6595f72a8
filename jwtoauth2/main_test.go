package jwtoauth2_test

import (
	"context"
	"testing"

	"github.com/lestrrat-go/httprc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/goleak"
)

// TestMain fails the run if the tests leave a goroutine running: a fetch, a
// timer or a connection that outlives the test that started it is a leak the
// package's users would have too.
//
// jwk.Fetch, which the integration tests' resource server uses, runs on a
// process-wide fetcher whose workers live until the process exits; the tests
// give it one they stop before the check, as jwx's SetGlobalFetcher advises
// for tests that need a clean shutdown.
func TestMain(m *testing.M) {
	ctx, cancel := context.WithCancel(context.Background())
	jwk.SetGlobalFetcher(httprc.NewFetcher(ctx))
	goleak.VerifyTestMain(runThen{m, cancel})
}

// runThen runs the tests, then calls after.
type runThen struct {
	m     *testing.M
	after func()
}

func (r runThen) Run() int {
	defer r.after()
	return r.m.Run()
}
