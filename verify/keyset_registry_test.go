package verify_test

import (
	"context"
	"errors"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestKeySetRegistry_Bounds(t *testing.T) {
	url := ksServe(t, &ksSource{body: ksDoc(t, "k1")})
	r := verify.NewRegistry(2, verify.KeySetClock(ksNewClock().Now))
	steps := []struct {
		op, name, url string
		wantErr       bool
		wantIs        error // if not nil, what the error wraps
		wantLen       int
	}{
		{"register", "a", url, false, nil, 1},
		{"register", "b", url, false, nil, 2},
		{"register", "c", url, true, verify.ErrRegistryFull, 2},
		{"register", "a", url, true, nil, 2}, // already registered
		{"unregister", "a", "", false, nil, 1},
		{"unregister", "a", "", false, nil, 1},
		{"register", "c", "http://example.com/jwks", true, verify.ErrKeySetRefused, 1},
		{"register", "", url, true, nil, 1},
		{"register", "c", url, false, nil, 2},
	}
	for _, st := range steps {
		var err error
		switch st.op {
		case "register":
			err = r.Register(st.name, st.url)
		case "unregister":
			r.Unregister(st.name)
		}
		switch {
		case !st.wantErr && err != nil:
			t.Errorf("%s(%q) error = %v; want nil", st.op, st.name, err)
		case st.wantErr && err == nil:
			t.Errorf("%s(%q) error = nil; want an error", st.op, st.name)
		case st.wantIs != nil && !errors.Is(err, st.wantIs):
			t.Errorf("%s(%q) error = %v; want %v", st.op, st.name, err, st.wantIs)
		}
		if got := r.Len(); got != st.wantLen {
			t.Errorf("after %s(%q): Len() = %d; want %d", st.op, st.name, got, st.wantLen)
		}
	}
	if _, ok := r.Get("a"); ok {
		t.Errorf(`Get("a") ok = true; want false (unregistered)`)
	}
	s, ok := r.Get("c")
	if !ok {
		t.Fatalf(`Get("c") ok = false; want true`)
	}
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatalf(`Get("c").Key() error = %v`, err)
	}
	st, ok := r.Status("c")
	if !ok || st.Hits != 1 || st.Keys != 1 {
		t.Errorf(`Status("c") = %+v, %v; want 1 hit, 1 key, true`, st, ok)
	}
	if _, ok := r.Status("a"); ok {
		t.Errorf(`Status("a") ok = true; want false`)
	}
	if st, _ := r.Status("b"); st.Refreshes != 0 {
		t.Errorf(`Status("b").Refreshes = %d; want 0 (nothing fetched before a call)`, st.Refreshes)
	}
}
