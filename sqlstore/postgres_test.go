package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/grantstoretest"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/sqlstore"
)

var (
	ctx     = context.Background()
	testKey = bytes.Repeat([]byte{1}, 32)
)

// openDB opens a pool on dsn, closed when the test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newGrants returns grants on db sealed with testKey, its table created.
func newGrants(t *testing.T, db *sql.DB, opts ...sqlstore.Option) *sqlstore.Grants {
	t.Helper()
	g, err := sqlstore.New(db, append([]sqlstore.Option{sqlstore.Key("k1", testKey)}, opts...)...)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	if err := g.CreateTable(ctx); err != nil {
		t.Fatalf("CreateTable() error = %v", err)
	}
	return g
}

func TestPostgres_Conformance(t *testing.T) {
	db := openDB(t, testkit.Postgres(t).DSN())
	newGrants(t, db)
	grantstoretest.Run(t, func(t *testing.T) provider.GrantStore { return newGrants(t, db) })
}

func TestPostgres_ConformancePlaintext(t *testing.T) {
	db := openDB(t, testkit.Postgres(t).DSN())
	opts := []sqlstore.Option{sqlstore.InsecurePlaintextTokens(), sqlstore.Table("public.dev_grants")}
	grantstoretest.Run(t, func(t *testing.T) provider.GrantStore {
		g, err := sqlstore.New(db, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.CreateTable(ctx); err != nil {
			t.Fatal(err)
		}
		return g
	})
}

// TestPostgres_Encrypted reads the table itself: no row holds its token, and
// a row moved to another key or version, or read without its key ID, does
// not open.
func TestPostgres_Encrypted(t *testing.T) {
	db := openDB(t, testkit.Postgres(t).DSN())
	g := newGrants(t, db)
	const token = "v1.refresh-token-of-alice-0123456789"
	if _, err := g.Swap(ctx, "alice", 0, token); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.QueryRow("SELECT token FROM jwtcache_grants WHERE key = 'alice'").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte(token[:12])) {
		t.Fatalf("the row holds the refresh token")
	}

	wantCorrupt := func(what string, g *sqlstore.Grants, key, want string) {
		t.Helper()
		got, v, err := g.Load(ctx, key)
		if !errors.Is(err, sqlstore.ErrCorrupt) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), token[:12]) {
			t.Errorf("%s: Load(%q) = %q, %d, %v; want ErrCorrupt naming %q, without the token", what, key, got, v, err, want)
		}
	}
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.Exec(query, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec("INSERT INTO jwtcache_grants (key, version, token) SELECT 'bob', version, token FROM jwtcache_grants WHERE key = 'alice'")
	wantCorrupt("a row copied to another key", g, "bob", "does not authenticate")
	exec("UPDATE jwtcache_grants SET version = 2 WHERE key = 'alice'")
	wantCorrupt("a row set to another version", g, "alice", "does not authenticate")
	exec("UPDATE jwtcache_grants SET version = 1 WHERE key = 'alice'")
	if got, _, err := g.Load(ctx, "alice"); err != nil || got != token {
		t.Errorf("Load() of the row restored = %.12q, %v; want the token", got, err)
	}
	other, err := sqlstore.New(db, sqlstore.Key("k2", bytes.Repeat([]byte{2}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	wantCorrupt("grants without the row's key ID", other, "alice", `key ID "k1"`)

	// Rotation: grants with a new key first and the old one after open
	// the old rows, and seal the next token with the new key.
	rotated, err := sqlstore.New(db, sqlstore.Key("k2", bytes.Repeat([]byte{2}, 32)), sqlstore.Key("k1", testKey))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := rotated.Load(ctx, "alice"); err != nil || got != token {
		t.Errorf("rotated Load() = %.12q, %v; want the token the old key sealed", got, err)
	}
	if _, err := rotated.Swap(ctx, "alice", 1, token+"-2"); err != nil {
		t.Fatal(err)
	}
	wantCorrupt("a token sealed after the rotation, without the new key", g, "alice", `key ID "k2"`)
}

// TestPostgres_Down stops the server: the calls fail within their Timeout,
// with an error that is neither a miss nor a conflict; once it is back, they
// work again, on the data it had.
func TestPostgres_Down(t *testing.T) {
	srv := testkit.Postgres(t)
	const timeout = 500 * time.Millisecond
	g := newGrants(t, openDB(t, srv.DSN()), sqlstore.Timeout(timeout))
	if _, err := g.Swap(ctx, "alice", 0, "rt-1"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	grantstoretest.Down(t, g, timeout, "sqlstore: ")
	srv.Start(t)
	testkit.Eventually(t, "Load() with the server back", func() bool {
		_, _, err := g.Load(ctx, "alice")
		return err == nil
	})
	if got, v, err := g.Load(ctx, "alice"); got != "rt-1" || v != 1 || err != nil {
		t.Errorf("Load() with the server back = %q, %d, %v; want rt-1, 1, nil", got, v, err)
	}
	if v, err := g.Swap(ctx, "alice", 1, "rt-2"); v != 2 || err != nil {
		t.Errorf("Swap(1) with the server back = %d, %v; want 2, nil", v, err)
	}
}

// TestPostgres_Table keeps the grants in a table of another schema, apart
// from the default table's.
func TestPostgres_Table(t *testing.T) {
	db := openDB(t, testkit.Postgres(t).DSN())
	if _, err := db.Exec("CREATE SCHEMA app"); err != nil {
		t.Fatal(err)
	}
	app, def := newGrants(t, db, sqlstore.Table("app.grants")), newGrants(t, db)
	if _, err := app.Swap(ctx, "alice", 0, "rt-app"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := def.Load(ctx, "alice"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Errorf("Load() of the default table: error = %v; want ErrNotFound", err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM app.grants WHERE key = 'alice' AND version = 1").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows of alice in app.grants = %d, %v; want 1", n, err)
	}
}

// TestPostgres_Example runs Example on a real server.
func TestPostgres_Example(t *testing.T) {
	srv := testkit.Postgres(t)
	t.Setenv("DATABASE_URL", srv.DSN())
	Example()
	g := newGrants(t, openDB(t, srv.DSN()), sqlstore.Key("2026-11", grantKey))
	if got, v, err := g.Load(ctx, "user-42"); got != "rotated refresh token" || v != 2 || err != nil {
		t.Errorf("Load() after Example = %q, %d, %v; want the rotated token at version 2", got, v, err)
	}
}

// TestGrants_Timeout runs the calls against a server that accepts
// connections and never answers: each fails once its Timeout has passed.
func TestGrants_Timeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn // held open, unanswered, until the listener closes
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	const timeout = 300 * time.Millisecond
	g, err := sqlstore.New(openDB(t, "postgres://postgres@"+l.Addr().String()+"/postgres?sslmode=disable"),
		sqlstore.Key("k1", testKey), sqlstore.Timeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, _, err = g.Load(ctx, "alice")
	if took := time.Since(begin); !errors.Is(err, context.DeadlineExceeded) || took < timeout || took > timeout+3*time.Second {
		t.Errorf("Load() of a server that never answers: error = %v after %v; want DeadlineExceeded after the Timeout, %v", err, took, timeout)
	}
}

func TestNew(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:1/postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := sqlstore.Key("k1", testKey)
	tests := []struct {
		name string
		opts []sqlstore.Option
		want string // what an error wrapping ErrInvalid names; "" for none
	}{
		{"key", []sqlstore.Option{key}, ""},
		{"plaintext", []sqlstore.Option{sqlstore.InsecurePlaintextTokens()}, ""},
		{"table", []sqlstore.Option{key, sqlstore.Table("grants_2")}, ""},
		{"schema table", []sqlstore.Option{key, sqlstore.Table("app.grants")}, ""},
		{"timeout", []sqlstore.Option{key, sqlstore.Timeout(5 * time.Second)}, ""},
		{"default timeout", []sqlstore.Option{key, sqlstore.Timeout(0)}, ""},
		{"no key", nil, "sqlstore: no encryption key"},
		{"key and plaintext", []sqlstore.Option{key, sqlstore.InsecurePlaintextTokens()}, "both a Key and InsecurePlaintextTokens"},
		{"short key", []sqlstore.Option{sqlstore.Key("k1", testKey[:16])}, `sqlstore: Key("k1"): the key has 16 bytes; want 32`},
		{"empty key ID", []sqlstore.Option{sqlstore.Key("", testKey)}, `sqlstore: Key("")`},
		{"key ID twice", []sqlstore.Option{key, key}, "given twice"},
		{"empty table", []sqlstore.Option{key, sqlstore.Table("")}, `sqlstore: Table("")`},
		{"upper-case table", []sqlstore.Option{key, sqlstore.Table("Grants")}, `Table("Grants")`},
		{"table with a dash", []sqlstore.Option{key, sqlstore.Table("my-grants")}, `Table("my-grants")`},
		{"table with SQL", []sqlstore.Option{key, sqlstore.Table("g; DROP TABLE users")}, `Table("g; DROP TABLE users")`},
		{"quoted table", []sqlstore.Option{key, sqlstore.Table(`"grants"`)}, `Table("\"grants\"")`},
		{"three-part table", []sqlstore.Option{key, sqlstore.Table("a.b.c")}, `Table("a.b.c")`},
		{"long table", []sqlstore.Option{key, sqlstore.Table(strings.Repeat("g", 64))}, "Table("},
		{"negative timeout", []sqlstore.Option{key, sqlstore.Timeout(-time.Second)}, "sqlstore: Timeout(-1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sqlstore.New(db, tt.opts...)
			testkit.WantInvalid(t, "New", err, tt.want)
		})
	}
	_, err = sqlstore.New(nil, key)
	testkit.WantInvalid(t, "New(nil)", err, "nil *sql.DB")
}
