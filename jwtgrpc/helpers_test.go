package jwtgrpc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// The issuer and audience of the tests' tokens, which the server's verifier
// requires.
const (
	testIssuer   = "https://idp.test"
	testAudience = "grpc-test"
)

// idp is the tests' identity provider: a token function that mints ES256
// JWTs for the server's verifier, counts its calls, and can be made to fail
// or to hang.
type idp struct {
	minter *testkit.Minter
	keys   keySource // the minter's public key

	calls atomic.Int64 // calls of the token functions
	seq   atomic.Int64 // numbers the tokens' jti
	// now is the clock of the tokens' iat and exp; set before first use.
	now func() time.Time

	mu sync.Mutex
	// guards err, gate and claims
	err  error         // returned by every call while set
	gate chan struct{} // while set, calls wait for it to close
	// claims are those of each call's claims challenge, if it had one
	// (jwtcache.ClaimsChallenge), in order; such a call's token has a jti
	// ending in "+claims".
	claims []string
	// started receives the subject of each call as it starts, if there is
	// room: tests that need to know a fetch began read it.
	started chan string
}

func newIDP(t testing.TB) *idp {
	t.Helper()
	m := testkit.NewMinter("grpc-test-idp")
	return &idp{minter: m, keys: keySource{m.KeyID(): m.PublicKey()}, now: time.Now, started: make(chan string, 64)}
}

// mint returns a token for sub that lives for lifetime from now (an already
// expired one for a negative lifetime).
func (p *idp) mint(sub string, lifetime time.Duration) string {
	return mintFor(p.minter, p.now(), sub, strconv.FormatInt(p.seq.Add(1), 10), lifetime)
}

// mintFor returns a token of m that the server's verifier accepts, for sub,
// with the ID jti, that lives for lifetime from now (an already expired one
// for a negative lifetime).
func mintFor(m *testkit.Minter, now time.Time, sub, jti string, lifetime time.Duration) string {
	return m.Mint(now, lifetime, map[string]any{
		jwt.IssuerKey:   testIssuer,
		jwt.AudienceKey: []string{testAudience},
		jwt.SubjectKey:  sub,
		jwt.JwtIDKey:    jti,
		jwt.IssuedAtKey: now.Add(min(lifetime, 0)),
	})
}

// token is the token function of a Cache: a token for "client-1".
func (p *idp) token(ctx context.Context) (string, error) {
	return p.issue(ctx, "client-1")
}

// tenantToken is the token function of a CacheMap: a token whose subject is
// the key.
func (p *idp) tenantToken(ctx context.Context, key string) (string, error) {
	return p.issue(ctx, key)
}

func (p *idp) issue(ctx context.Context, sub string) (string, error) {
	p.calls.Add(1)
	select {
	case p.started <- sub:
	default:
	}
	p.mu.Lock()
	err, gate := p.err, p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if err != nil {
		return "", err
	}
	jti := strconv.FormatInt(p.seq.Add(1), 10)
	if claims, ok := jwtcache.ClaimsChallenge(ctx); ok {
		p.mu.Lock()
		p.claims = append(p.claims, claims)
		p.mu.Unlock()
		jti += "+claims"
	}
	return mintFor(p.minter, p.now(), sub, jti, time.Hour), nil
}

// claimsAsked returns the claims of the calls that had a claims challenge.
func (p *idp) claimsAsked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.claims)
}

// fail makes every call fail with err from now on; nil ends it.
func (p *idp) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// hold makes calls wait until release is called.
func (p *idp) hold() (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	p.gate = gate
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.gate = nil
			p.mu.Unlock()
			close(gate)
		})
	}
}

// cache returns a Cache on p's token function.
func (p *idp) cache(opts ...jwtcache.Option) *jwtcache.Cache {
	return jwtcache.NewCache(append([]jwtcache.Option{
		jwtcache.Name("grpc-test"), jwtcache.TokenFunction(p.token), jwtcache.Logger(nil),
	}, opts...)...)
}

// errOutage is the error of a provider that cannot be reached, as the
// provider package's client returns it.
var errOutage = fmt.Errorf("provider: token request: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})

// keySource is a KeySource of fixed keys.
type keySource map[string]jwk.Key

func (s keySource) Key(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("no key %q", kid)
}

// staleKeys is a KeySource whose key set could not be fetched.
type staleKeys struct{}

func (staleKeys) Key(context.Context, string) (jwk.Key, error) {
	return nil, fmt.Errorf("%w: fetch: connection refused", verify.ErrKeySetStale)
}

// server is a TestService server on 127.0.0.1 that authenticates every call
// with jwtgrpc's server interceptors and a verifier of the idp's tokens,
// then refuses those it revoked.
type server struct {
	addr      string
	clientTLS credentials.TransportCredentials // trusts the server's certificate

	attempts atomic.Int64    // calls that reached the server, before authentication
	refused  atomic.Int64    // calls refused as revoked
	logs     *testkit.Buffer // the server interceptors' log

	mu sync.Mutex
	// guards revoked, revokeAll and challenge
	revoked   map[string]bool // by jti
	revokeAll bool
	challenge challengeConfig
}

// challengeConfig makes the server refuse, with a challenge, the tokens that
// were not fetched with a claims challenge.
type challengeConfig struct {
	code     codes.Code // the refusal's code; nothing is refused if OK (zero)
	value    string     // the www-authenticate value
	inHeader bool       // sent with the header, not the trailer
}

// serverConfig varies the test server.
type serverConfig struct {
	keys      verify.KeySource // the default is the idp's keys
	clock     func() time.Time // the verifier's; the default is the real one
	plaintext bool             // no TLS
}

func startServer(t testing.TB, p *idp, cfg serverConfig) *server {
	t.Helper()
	s := &server{revoked: map[string]bool{}}
	keys := cfg.keys
	if keys == nil {
		keys = p.keys
	}
	v, err := verify.New(keys, verify.Issuer(testIssuer), verify.Audience(testAudience), verify.Clock(cfg.clock))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testkit.NewLogger()
	s.logs = logs
	serverTLS, clientTLS, err := newTLS()
	if err != nil {
		t.Fatal(err)
	}
	s.clientTLS = clientTLS
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.countUnary, jwtgrpc.UnaryServerInterceptor(v, jwtgrpc.Logger(logger)), s.revokeUnary),
		grpc.ChainStreamInterceptor(s.countStream, jwtgrpc.StreamServerInterceptor(v, jwtgrpc.Logger(logger)), s.revokeStream),
	}
	if !cfg.plaintext {
		opts = append(opts, grpc.Creds(serverTLS))
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, testService{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return s
}

// revoke makes the server refuse tok from now on.
func (s *server) revoke(tok string) {
	t, err := jwt.ParseInsecure([]byte(tok))
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[t.JwtID()] = true
}

// refuseAll makes the server refuse every token (or none again).
func (s *server) refuseAll(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeAll = all
}

// challengeUnclaimed makes the server refuse the tokens not fetched with a
// claims challenge, by cfg.
func (s *server) challengeUnclaimed(cfg challengeConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.challenge = cfg
}

// check returns the Unauthenticated error of a call whose claims were
// revoked, or the error and challenge of challengeUnclaimed.
func (s *server) check(ctx context.Context) error {
	c, ok := verify.FromContext(ctx)
	if !ok {
		return status.Error(codes.Internal, "no claims in the context")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revokeAll || s.revoked[c.ID()] {
		s.refused.Add(1)
		return status.Error(codes.Unauthenticated, "token revoked")
	}
	if ch := s.challenge; ch.code != codes.OK && !strings.HasSuffix(c.ID(), "+claims") {
		s.refused.Add(1)
		md := metadata.Pairs("www-authenticate", ch.value)
		send := grpc.SetTrailer
		if ch.inHeader {
			send = grpc.SendHeader
		}
		if err := send(ctx, md); err != nil {
			return status.Errorf(codes.Internal, "send the challenge: %v", err)
		}
		return status.Error(ch.code, "token refused")
	}
	return nil
}

func (s *server) countUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.attempts.Add(1)
	return handler(ctx, req)
}

func (s *server) countStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	s.attempts.Add(1)
	return handler(srv, ss)
}

func (s *server) revokeUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *server) revokeStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.check(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// testService answers with the subject of the claims that the server
// interceptors put in the context: the proof that they reach the handler.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func subject(ctx context.Context) (string, error) {
	c, ok := verify.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Internal, "no claims in the context")
	}
	return c.Subject(), nil
}

func (testService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	sub, err := subject(ctx)
	if err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Username: sub}, nil
}

// StreamingOutputCall sends one message per response parameter, each with
// the subject as its payload.
func (testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	sub, err := subject(stream.Context())
	if err != nil {
		return err
	}
	for range req.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte(sub)}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall greets the client with the subject, then echoes each
// message's payload until the client closes its side.
func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	sub, err := subject(stream.Context())
	if err != nil {
		return err
	}
	if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte(sub)}}); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// dial returns a client of the server at addr over transport, closed when
// the test ends.
func dial(t testing.TB, addr string, transport credentials.TransportCredentials, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(transport)}, opts...)...)
	if err != nil {
		t.Fatalf("grpc.NewClient() error = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// withInterceptors returns the dial options that install c's interceptors.
func withInterceptors(c *jwtgrpc.Credentials) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor())
}

// call makes a unary call and returns the subject the server saw.
func call(ctx context.Context, client testgrpc.TestServiceClient, opts ...grpc.CallOption) (string, error) {
	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, opts...)
	return resp.GetUsername(), err
}

// insecureTransport is plaintext transport credentials.
var insecureTransport = insecure.NewCredentials()

// newTLS returns the transport credentials of a server with a new
// self-signed certificate for 127.0.0.1, and of a client that trusts it.
func newTLS() (server, client credentials.TransportCredentials, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "jwtgrpc test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS13,
	})
	client = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	return server, client, nil
}

// secureContext returns ctx as grpc-go gives it to GetRequestMetadata on a
// TLS connection to 127.0.0.1.
func secureContext(ctx context.Context) context.Context {
	return credentials.NewContextWithRequestInfo(ctx, credentials.RequestInfo{
		Method:   "/grpc.testing.TestService/UnaryCall",
		AuthInfo: credentials.TLSInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
	})
}
