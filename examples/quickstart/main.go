// Quickstart shows jwtcache at work in a few seconds, with nothing to set up.
//
// It starts an OAuth2 client-credentials token endpoint on 127.0.0.1 that
// issues short-lived ES256 JWTs, and has many goroutines call
// [jwtcache.Cache.EnsureToken] for several token lifetimes. It reports the calls
// served, the tokens fetched, how long calls waited, and any errors or expired
// tokens; either of those makes it exit with status 1, so it is a smoke test too.
//
//	go run ./examples/quickstart [-duration 8s] [-goroutines 64] [-lifetime 5s]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
)

// The client the demo registers with its token endpoint.
const (
	clientID     = "quickstart-client"
	clientSecret = "quickstart-secret"
	latency      = 50 * time.Millisecond // the token endpoint's artificial delay
)

func main() {
	duration := flag.Duration("duration", 8*time.Second, "how long to call the cache")
	goroutines := flag.Int("goroutines", 64, "how many goroutines call the cache")
	lifetime := flag.Duration("lifetime", 5*time.Second, "lifetime of the tokens the endpoint issues")
	flag.Parse()
	if err := run(*duration, *goroutines, *lifetime); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, goroutines int, lifetime time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	var issued atomic.Int64
	srv := httptest.NewServer(tokenEndpoint(key, lifetime, &issued))
	defer srv.Close()

	cache := jwtcache.NewCache(
		jwtcache.Name("quickstart"),
		jwtcache.TokenFunction(clientCredentials(srv.Client(), srv.URL+"/token")),
		jwtcache.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)

	fmt.Printf("jwtcache quickstart: %d goroutines for %s against a token endpoint on %s issuing %s tokens (%s latency)\n",
		goroutines, duration, strings.TrimPrefix(srv.URL, "http://"), lifetime, latency)
	results := make([]result, goroutines)
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = hammer(cache, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	var total result
	for _, r := range results {
		total.merge(r)
	}
	fetched := issued.Load()
	fmt.Printf("calls served:    %d (%.0fk per second)\n", total.calls, float64(total.calls)/elapsed.Seconds()/1e3)
	if fetched == 0 {
		fmt.Printf("tokens fetched:  0\n")
	} else {
		fmt.Printf("tokens fetched:  %d (one every %s on average, for tokens that live %s)\n",
			fetched, (elapsed / time.Duration(fetched)).Round(time.Millisecond), lifetime)
	}
	fmt.Printf("errors:          %d\n", total.errors)
	fmt.Printf("expired tokens:  %d (of %d checked)\n", total.expired, total.checked)
	fmt.Printf("waited on fetch: %d calls (%d first calls, made before any token existed; %d later)\n",
		total.slowFirst+total.slowLater, total.slowFirst, total.slowLater)
	fmt.Printf("longest wait:    %s\n", total.longest.Round(time.Microsecond))
	fmt.Printf("p99.9 wait:      under %s\n", total.hist.quantile(0.999, total.calls))

	if total.errors > 0 || total.expired > 0 {
		return fmt.Errorf("%d errors (first: %v), %d expired tokens", total.errors, total.firstErr, total.expired)
	}
	return nil
}

// tokenEndpoint returns a handler for client-credentials token requests that
// issues JWTs signed with key, living for lifetime, and counts them in issued.
func tokenEndpoint(key *ecdsa.PrivateKey, lifetime time.Duration, issued *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != clientID || secret != clientSecret {
			w.Header().Set("WWW-Authenticate", `Basic realm="quickstart"`)
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.PostFormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
		now := time.Now()
		tok, err := jwt.NewBuilder().
			Issuer("http://" + r.Host).
			Subject(clientID).
			Audience([]string{"https://api.example.com"}).
			IssuedAt(now).
			Expiration(now.Add(lifetime)).
			JwtID(strconv.FormatInt(issued.Add(1), 10)).
			Build()
		var signed []byte
		if err == nil {
			signed, err = jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
		}
		if err != nil {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": string(signed),
			"token_type":   "Bearer",
			"expires_in":   int(lifetime.Seconds()),
		})
	})
	return mux
}

// clientCredentials returns a token function that requests a token from
// tokenURL with the client-credentials grant (RFC 6749, section 4.4).
func clientCredentials(client *http.Client, tokenURL string) jwtcache.TokenFunc {
	return func(ctx context.Context) (string, error) {
		form := url.Values{"grant_type": {"client_credentials"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			return "", fmt.Errorf("token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, clientSecret)
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("token request: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("token request: %s", resp.Status)
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return "", fmt.Errorf("token response: %w", err)
		}
		return body.AccessToken, nil
	}
}

// result is what one goroutine observed.
type result struct {
	calls, errors, checked, expired int64
	slowFirst, slowLater            int64 // calls that took as long as a fetch
	firstErr                        error
	longest                         time.Duration
	hist                            histogram
}

// hammer calls cache.EnsureToken until deadline. Every 1000th token is parsed
// (without verification: only its exp claim matters here) to check that it had
// not expired when it was returned; one that does not parse counts as expired.
func hammer(cache *jwtcache.Cache, deadline time.Time) result {
	var r result
	for t0 := time.Now(); t0.Before(deadline); t0 = time.Now() {
		tok, err := cache.EnsureToken(context.Background())
		t1 := time.Now()
		d := t1.Sub(t0)
		r.hist.add(d)
		r.longest = max(r.longest, d)
		if d >= latency {
			if r.calls == 0 {
				r.slowFirst++
			} else {
				r.slowLater++
			}
		}
		switch {
		case err != nil:
			r.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		case r.calls%1000 == 0:
			r.checked++
			if parsed, err := jwt.ParseString(tok, jwt.WithVerify(false), jwt.WithValidate(false)); err != nil || !t1.Before(parsed.Expiration()) {
				r.expired++
			}
		}
		r.calls++
		time.Sleep(100 * time.Microsecond)
	}
	return r
}

// merge adds o's observations to r's.
func (r *result) merge(o result) {
	r.calls += o.calls
	r.errors += o.errors
	r.checked += o.checked
	r.expired += o.expired
	r.slowFirst += o.slowFirst
	r.slowLater += o.slowLater
	r.longest = max(r.longest, o.longest)
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
	for i := range r.hist {
		r.hist[i] += o.hist[i]
	}
}

// histogram counts durations in buckets: each power of two is split in four,
// so a quantile is read to within 25% without keeping every duration.
type histogram [64 * 4]int64

// add counts d in the bucket [lo, lo + lo/4) that holds it.
func (h *histogram) add(d time.Duration) {
	n := uint64(max(d, 4))
	e := bits.Len64(n) - 1 // 2^e <= n < 2^(e+1), e >= 2
	h[e*4+int(n>>(e-2)&3)]++
}

// quantile returns the upper bound of the bucket that holds the q-quantile of
// the n durations counted.
func (h *histogram) quantile(q float64, n int64) time.Duration {
	rank, seen := int64(q*float64(n)), int64(0)
	for i, c := range h {
		if seen += c; seen > rank {
			return time.Duration(4+i%4+1) << (i/4 - 2)
		}
	}
	return 0
}
