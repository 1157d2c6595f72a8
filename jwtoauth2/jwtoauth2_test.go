package jwtoauth2_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
)

// minter signs the tests' tokens.
var minter = testkit.NewMinter("jwtoauth2-test")

// newJWT returns a signed token that lives for life.
func newJWT(life time.Duration) string {
	return minter.Mint(time.Now(), life, nil)
}

// tokenEndpoint is a client-credentials token endpoint on 127.0.0.1 that
// counts the tokens it issues. With a nil t, the caller closes it.
func tokenEndpoint(t testing.TB, tokenType string) (*httptest.Server, *atomic.Int64) {
	var issued atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "svc" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.PostFormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": newJWT(time.Hour), "token_type": tokenType, "expires_in": 3600,
		})
	}))
	if t != nil {
		t.Cleanup(srv.Close)
	}
	return srv, &issued
}

func clientConfig(url string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID: "svc", ClientSecret: "s3cret", TokenURL: url,
		AuthStyle: oauth2.AuthStyleInHeader,
	}
}

func TestClientCredentials(t *testing.T) {
	srv, issued := tokenEndpoint(t, "bearer")
	cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.ClientCredentials(clientConfig(srv.URL))))
	first, err := cache.EnsureToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if got, _ := cache.EnsureToken(context.Background()); got != first {
			t.Fatalf("EnsureToken() = new token; want the cached one")
		}
	}
	if got := issued.Load(); got != 1 {
		t.Errorf("tokens issued = %d; want 1", got)
	}

	bad := clientConfig(srv.URL)
	bad.ClientSecret = "wrong"
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.ClientCredentials(bad)))
	var re *oauth2.RetrieveError
	if _, err := c.EnsureToken(context.Background()); !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong secret: error = %v; want oauth2's RetrieveError with 401", err)
	}
}

// roundTripCounter counts the requests it passes on.
type roundTripCounter struct{ n atomic.Int64 }

func (c *roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestClientCredentials_UsesContext checks that the token request runs on the
// fetch's context, which keeps the caller's values: here, the HTTP client
// oauth2 takes from the context.
func TestClientCredentials_UsesContext(t *testing.T) {
	srv, _ := tokenEndpoint(t, "Bearer")
	counter := &roundTripCounter{}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: counter})
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.ClientCredentials(clientConfig(srv.URL))))
	if _, err := c.EnsureToken(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counter.n.Load(); got != 1 {
		t.Errorf("requests through the context's client = %d; want 1", got)
	}
}

func TestFromTokenSource(t *testing.T) {
	srv, issued := tokenEndpoint(t, "Bearer")
	conf := clientConfig(srv.URL)
	cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.FromTokenSource(
		func(ctx context.Context) oauth2.TokenSource { return conf.TokenSource(ctx) })))
	for range 3 {
		if _, err := cache.EnsureToken(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := issued.Load(); got != 1 {
		t.Errorf("tokens issued = %d; want 1", got)
	}

	mac, _ := tokenEndpoint(t, "mac")
	conf = clientConfig(mac.URL)
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.ClientCredentials(conf)))
	if _, err := c.EnsureToken(context.Background()); err == nil {
		t.Errorf("EnsureToken() with a MAC token = nil error; want one")
	}
}

func TestTokenSource(t *testing.T) {
	want := newJWT(time.Hour)
	cache := jwtcache.NewCache(jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) { return want, nil }))
	tok, err := jwtoauth2.TokenSource(context.Background(), cache).Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != want || tok.Type() != "Bearer" || !tok.Valid() {
		t.Errorf("Token() = %q type %q valid %v; want the cached token, Bearer, valid", tok.AccessToken, tok.Type(), tok.Valid())
	}
	if d := time.Until(tok.Expiry); d < 58*time.Minute || d > time.Hour {
		t.Errorf("Expiry in %v; want about an hour", d)
	}

	m := jwtcache.NewCacheMap(jwtcache.Logger(nil),
		jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return want, nil }))
	if tok, err := jwtoauth2.MapTokenSource(context.Background(), m, "tenant").Token(); err != nil || tok.AccessToken != want {
		t.Errorf("MapTokenSource Token() = %v, %v", tok, err)
	}
	if _, err := jwtoauth2.MapTokenSource(context.Background(), m, "").Token(); !errors.Is(err, jwtcache.ErrEmptyKey) {
		t.Errorf("MapTokenSource with an empty key: error = %v; want ErrEmptyKey", err)
	}

	// oauth2's Transport takes the cache as its token source.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(api.Close)
	client := &http.Client{Transport: &oauth2.Transport{Source: jwtoauth2.TokenSource(context.Background(), cache)}}
	resp, err := client.Get(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("oauth2.Transport with the cache: status %d; want 200", resp.StatusCode)
	}
}

// Benchmarks: the cache against oauth2.ReuseTokenSource, the usual way to
// cache a token with x/oauth2.

// countingSource issues a new hour-long token on every call.
type countingSource struct{ calls atomic.Int64 }

func (s *countingSource) Token() (*oauth2.Token, error) {
	s.calls.Add(1)
	return &oauth2.Token{AccessToken: newJWT(time.Hour), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}

// sources returns, for each contender, a fresh source of tokens and a way to
// get one.
func contenders() map[string]func(*countingSource) func() (string, error) {
	return map[string]func(*countingSource) func() (string, error){
		"jwtcache": func(src *countingSource) func() (string, error) {
			c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(jwtoauth2.FromTokenSource(
				func(context.Context) oauth2.TokenSource { return src })))
			return func() (string, error) { return c.EnsureToken(context.Background()) }
		},
		"oauth2.ReuseTokenSource": func(src *countingSource) func() (string, error) {
			ts := oauth2.ReuseTokenSource(nil, src)
			return func() (string, error) {
				tok, err := ts.Token()
				if err != nil {
					return "", err
				}
				return tok.AccessToken, nil
			}
		},
	}
}

func BenchmarkHit(b *testing.B) {
	for _, name := range []string{"jwtcache", "oauth2.ReuseTokenSource"} {
		get := contenders()[name](&countingSource{})
		get()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := get(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := get(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkStampede has 64 goroutines ask an empty cache for a token at once;
// one op is one stampede. fetches/op is how many tokens the provider issued.
func BenchmarkStampede(b *testing.B) {
	for _, name := range []string{"jwtcache", "oauth2.ReuseTokenSource"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var fetches int64
			for b.Loop() {
				src := &countingSource{}
				get := contenders()[name](src)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range 64 {
					wg.Go(func() {
						<-start
						if _, err := get(); err != nil {
							b.Error(err)
						}
					})
				}
				close(start)
				wg.Wait()
				fetches += src.calls.Load()
			}
			b.ReportMetric(float64(fetches)/float64(b.N), "fetches/op")
		})
	}
}
