// Quickstart shows jwtcache at work in a few seconds, with nothing to set up.
//
// It starts two servers on 127.0.0.1: an identity provider, with an OpenID
// discovery document and a client-credentials token endpoint that issues
// short-lived ES256 JWTs, and an API that checks the token on every request.
// Then it does what a service does: [provider.New] finds the token endpoint
// from the issuer URL, a [jwtcache.Cache] holds the tokens the provider
// issues, and a [jwtcache.Transport] puts them on the requests of an
// [http.Client], which many goroutines use to call the API for several token
// lifetimes. It reports the calls served, the tokens fetched, how long calls
// waited for a token, and any errors or tokens the API refused; any of those
// makes it exit with status 1, so it is a smoke test too.
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
	"io"
	"log/slog"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// The client the demo registers with its identity provider, and the audience
// of the tokens it issues, which the API requires.
const (
	clientID     = "quickstart-client"
	clientSecret = "quickstart-secret"
	audience     = "https://api.example.com"
	latency      = 50 * time.Millisecond // the token endpoint's artificial delay
)

func main() {
	duration := flag.Duration("duration", 8*time.Second, "how long to call the API")
	goroutines := flag.Int("goroutines", 64, "how many goroutines call the API")
	lifetime := flag.Duration("lifetime", 5*time.Second, "lifetime of the tokens the provider issues")
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
	idp := httptest.NewServer(identityProvider(key, lifetime, &issued))
	defer idp.Close()
	var checks apiChecks
	api := httptest.NewServer(apiHandler(&key.PublicKey, &checks))
	defer api.Close()

	// The transport under jwtcache's: in a service, nil for net/http's
	// default; here the default with an idle connection per goroutine, which
	// notes when each request leaves with its token, for the report.
	base := sent(pooled(goroutines))
	warnings := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// What a service does, as the README shows it: the provider's client,
	// found from its issuer URL; a cache of the tokens it issues; and an
	// HTTP client whose requests to the API carry them.
	client, err := provider.New(context.Background(), idp.URL, provider.ClientSecretBasic(clientID, clientSecret))
	if err != nil {
		return err
	}
	cache := jwtcache.NewCache(jwtcache.Name("quickstart"), jwtcache.IssueFunction(client.Issue), jwtcache.Logger(warnings))
	httpClient := &http.Client{
		Transport: jwtcache.NewTransport(cache, base, jwtcache.Hosts(api.Listener.Addr().String())),
		Timeout:   10 * time.Second,
	}
	httpClient.Transport = entered(httpClient.Transport) // for the report only

	fmt.Printf("jwtcache quickstart: %d goroutines for %s call an API on %s with tokens from a provider on %s issuing %s tokens (%s latency)\n",
		goroutines, duration, api.Listener.Addr(), idp.Listener.Addr(), lifetime, latency)
	results := make([]result, goroutines)
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = hammer(httpClient, api.URL+"/invoices", deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	var total result
	for _, r := range results {
		total.merge(r)
	}
	fetched := issued.Load()
	fmt.Printf("calls served:    %d (%.1fk per second)\n", total.calls-total.errors, float64(total.calls-total.errors)/elapsed.Seconds()/1e3)
	if fetched == 0 {
		fmt.Printf("tokens fetched:  0\n")
	} else {
		fmt.Printf("tokens fetched:  %d (one every %s on average, for tokens that live %s)\n",
			fetched, (elapsed / time.Duration(fetched)).Round(time.Millisecond), lifetime)
	}
	fmt.Printf("errors:          %d\n", total.errors)
	fmt.Printf("expired tokens:  %d (of %d the API checked; %d refused for another reason)\n",
		checks.expired.Load(), checks.checked.Load(), checks.refused.Load())
	fmt.Printf("waited on fetch: %d calls (%d first calls, made before any token existed; %d later)\n",
		total.slowFirst+total.slowLater, total.slowFirst, total.slowLater)
	fmt.Printf("longest wait:    %s\n", total.longest.Round(time.Microsecond))
	fmt.Printf("p99.9 wait:      under %s (of the calls after each goroutine's first)\n", total.hist.quantile(0.999, total.calls-int64(goroutines)))

	if total.errors > 0 || checks.expired.Load() > 0 || checks.refused.Load() > 0 {
		return fmt.Errorf("%d errors (first: %v), %d expired tokens, %d refused", total.errors, total.firstErr, checks.expired.Load(), checks.refused.Load())
	}
	return nil
}

// identityProvider returns the handler of an identity provider on 127.0.0.1:
// an OpenID Connect discovery document, and a token endpoint that answers
// client-credentials requests with JWTs signed with key, living for lifetime,
// which it counts in issued.
func identityProvider(key *ecdsa.PrivateKey, lifetime time.Duration, issued *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		issuer := "http://" + r.Host
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                issuer,
			"token_endpoint":                        issuer + "/token",
			"grant_types_supported":                 []string{"client_credentials"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != clientID || secret != clientSecret {
			w.Header().Set("WWW-Authenticate", `Basic realm="quickstart"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		if r.PostFormValue("grant_type") != "client_credentials" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
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
			Audience([]string{audience}).
			IssuedAt(now).
			Expiration(now.Add(lifetime)).
			JwtID(strconv.FormatInt(issued.Add(1), 10)).
			Build()
		var signed []byte
		if err == nil {
			signed, err = jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": string(signed),
			"token_type":   "Bearer",
			"expires_in":   int(lifetime.Seconds()),
		})
	})
	return mux
}

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiChecks counts the tokens the API checked, and those it refused.
type apiChecks struct {
	checked, expired, refused atomic.Int64
}

// apiHandler returns the handler of an API that accepts a request only with a
// Bearer token signed with pub, for its audience, and not yet expired, read
// on this host's clock to the nanosecond: a token served a moment too late
// counts. It answers any other with a 401, as a resource server does, which
// the transport answers by dropping the token and retrying once.
func apiHandler(pub *ecdsa.PublicKey, checks *apiChecks) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.checked.Add(1)
		now := time.Now()
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok, err := jwt.ParseString(raw, jwt.WithKey(jwa.ES256, pub), jwt.WithValidate(false))
		switch {
		case !ok || err != nil || !slices.Contains(tok.Audience(), audience):
			checks.refused.Add(1)
		case !now.Before(tok.Expiration()):
			checks.expired.Add(1)
		default:
			io.WriteString(w, "invoices\n")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
}

// pooled returns the transport under jwtcache's: net/http's default, keeping
// an idle connection per goroutine, where the default keeps two per host and
// the goroutines beyond would dial the API anew on every call.
func pooled(goroutines int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = goroutines
	return t
}

// timing is when a call's request entered jwtcache's transport, and when it
// left it with its token: the time between is how long the call waited for
// the token, without the HTTP client's own work or the API's.
type timing struct {
	entered, sent time.Time
}

// timingKey is the context key of a call's *timing.
type timingKey struct{}

// entered returns a transport that notes in the request's timing when it
// sends the request, with next: jwtcache's transport.
func entered(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if t, ok := r.Context().Value(timingKey{}).(*timing); ok {
			t.entered = time.Now()
		}
		return next.RoundTrip(r)
	})
}

// sent returns a transport that notes in the request's timing when it sends
// the request, with next, under jwtcache's transport: once the request has
// its token. On a retry after a 401, it notes the retry.
func sent(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if t, ok := r.Context().Value(timingKey{}).(*timing); ok {
			t.sent = time.Now()
		}
		return next.RoundTrip(r)
	})
}

// roundTripperFunc adapts a function to [http.RoundTripper].
type roundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// result is what one goroutine observed.
type result struct {
	calls, errors        int64
	slowFirst, slowLater int64 // calls that waited as long as a fetch for their token
	firstErr             error
	longest              time.Duration // the longest wait for a token
	hist                 histogram     // the waits for a token, but for the first call's
}

// hammer calls GET url with client until deadline. A call is an error unless
// the API answers 200 (which it does only to a valid token, after the
// transport's one retry on a 401). Its wait is the time its request spent in
// jwtcache's transport before it left with a token, as its timing notes it;
// for a request that never left, until the call returned.
func hammer(client *http.Client, url string, deadline time.Time) result {
	var r result
	for t0 := time.Now(); t0.Before(deadline); t0 = time.Now() {
		var t timing
		err := call(context.WithValue(context.Background(), timingKey{}, &t), client, url)
		if t.entered.IsZero() {
			t.entered = t0
		}
		if t.sent.IsZero() {
			t.sent = time.Now()
		}
		d := t.sent.Sub(t.entered)
		r.longest = max(r.longest, d)
		switch {
		case r.calls == 0 && d >= latency:
			r.slowFirst++
		case r.calls > 0:
			r.hist.add(d)
			if d >= latency {
				r.slowLater++
			}
		}
		if err != nil {
			r.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		}
		r.calls++
		time.Sleep(100 * time.Microsecond)
	}
	return r
}

// call makes one GET request for url with client, and reads the response.
func call(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the API answered %s", resp.Status)
	}
	return nil
}

// merge adds o's observations to r's.
func (r *result) merge(o result) {
	r.calls += o.calls
	r.errors += o.errors
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
