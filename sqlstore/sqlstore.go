// Package sqlstore implements [provider.GrantStore] on database/sql: the
// durable home of users' refresh tokens in a table of the application's
// database. It is an integration: it brings no driver (the application
// imports its own, and passes its *sql.DB), and it never caches.
//
// PostgreSQL is the tested database (its $n placeholders, ON CONFLICT and
// bytea); [Grants.CreateTable] creates the one table it uses, which is
//
//	CREATE TABLE IF NOT EXISTS jwtcache_grants (
//	    key        text        PRIMARY KEY,
//	    version    bigint      NOT NULL,
//	    token      bytea       NOT NULL,
//	    updated_at timestamptz NOT NULL DEFAULT now()
//	)
//
// under the name [Table] gives. A Swap is one statement, so one row's
// compare and set is atomic: an UPDATE ... WHERE key = $1 AND version = $2,
// or, from version 0, an INSERT ... ON CONFLICT DO NOTHING; the rows it
// affected tell a swap from a conflict. A Delete keeps the row, one version
// on, with an empty token, so that no version is used twice under a key; a
// user who disconnected for good may have their row deleted by hand, once
// no replica can still be refreshing for them.
//
// Refresh tokens are stored sealed with AES-256-GCM under the keys [Key]
// gives (as package redisstore seals its values), bound to their key and
// version, so that a row copied to another key, or set back to another
// version, does not open.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
	"github.com/seed7aeb0c6e/jwtcache/internal/seal"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// ErrCorrupt is what Load returns for a row whose token it cannot read back:
// tampered with, copied from another key or version, or sealed under a key
// ID it does not have. The refresh token is lost to this store; the user must
// authorize again, unless a [Key] that opens it is restored.
var ErrCorrupt = errors.New("sqlstore: the stored refresh token cannot be read back")

// Grants is a [provider.GrantStore] on a database/sql table. It is safe for
// concurrent use, by the replicas that share the table too.
type Grants struct {
	db      *sql.DB
	table   string
	timeout time.Duration
	ring    *seal.Ring
	err     error // the first option error, for New

	// The statements, on the table; written by New, only read after.
	load, insert, update, del string
}

var _ provider.GrantStore = (*Grants)(nil)

// Option configures [Grants].
type Option interface {
	apply(*Grants)
}

type optionFunc func(*Grants)

func (f optionFunc) apply(g *Grants) { f(g) }

// identifier is a table name, optionally schema-qualified, that needs no
// quotes: lower case, as PostgreSQL folds unquoted names, 63 bytes at most
// each (its NAMEDATALEN).
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$`)

// Table sets the name of the table, "schema.name" or "name": lower-case
// letters, digits and underscores, 63 bytes at most each. The default is
// "jwtcache_grants".
func Table(name string) Option {
	return optionFunc(func(g *Grants) {
		if !identifier.MatchString(name) {
			g.record(fmt.Errorf("sqlstore: Table(%q): want a name of lower-case letters, digits and _, 63 bytes at most (schema.name allowed): %w", name, jwtcache.ErrInvalid))
			return
		}
		g.table = name
	})
}

// Key adds an AES-256 key (32 bytes) with an ID, 1 to 255 bytes, that is
// stored in clear with every token it seals. The first Key seals new tokens;
// the others only open old ones. Refresh tokens never expire, so a key can be
// dropped only once no row names its ID (every grant swapped since the
// rotation). Its errors wrap [jwtcache.ErrInvalid].
func Key(id string, key []byte) Option {
	return optionFunc(func(g *Grants) { g.record(g.ring.Add(id, key)) })
}

// InsecurePlaintextTokens stores refresh tokens unencrypted, readable by
// anyone who can read the table. It exists for development setups only;
// [New] needs either it or a [Key].
func InsecurePlaintextTokens() Option {
	return optionFunc(func(g *Grants) { g.ring.Plaintext() })
}

// Timeout bounds each call's statement; past it, the call fails, and a Swap
// or Delete may nonetheless have been applied (see [provider.GrantStore]).
// Zero is the default; less is an error wrapping [jwtcache.ErrInvalid]. The
// default is 2 seconds.
func Timeout(d time.Duration) Option {
	return optionFunc(func(g *Grants) {
		bounds.Rule[time.Duration]{Pkg: "sqlstore", Name: "Timeout", Want: "0 (the default) or more"}.Apply(d, &g.timeout, g.record)
	})
}

// record keeps the first option error.
func (g *Grants) record(err error) {
	if g.err == nil {
		g.err = err
	}
}

// New returns the grants stored in db's table (see [Table]), which
// [Grants.CreateTable] creates. It needs a [Key], or
// [InsecurePlaintextTokens]; it makes no call to the database.
func New(db *sql.DB, opts ...Option) (*Grants, error) {
	if db == nil {
		return nil, fmt.Errorf("sqlstore: New: nil *sql.DB: %w", jwtcache.ErrInvalid)
	}
	g := &Grants{db: db, table: "jwtcache_grants", timeout: 2 * time.Second, ring: seal.NewRing("sqlstore", ErrCorrupt)}
	for _, o := range opts {
		if o != nil {
			o.apply(g)
		}
	}
	if g.err != nil {
		return nil, g.err
	}
	if err := g.ring.Ready(); err != nil {
		return nil, err
	}
	g.load = "SELECT version, token FROM " + g.table + " WHERE key = $1"
	g.insert = "INSERT INTO " + g.table + " (key, version, token, updated_at) VALUES ($1, 1, $2, now()) ON CONFLICT (key) DO NOTHING"
	g.update = "UPDATE " + g.table + " SET version = $3, token = $4, updated_at = now() WHERE key = $1 AND version = $2"
	// A delete leaves the row, one version on, without a token: a version
	// is never used twice under a key.
	g.del = "UPDATE " + g.table + " SET version = version + 1, token = '', updated_at = now() WHERE key = $1 AND version = $2 AND token <> ''"
	return g, nil
}

// CreateTable creates the table if it does not exist (the package doc shows
// it). Run it once, when the application is set up or starts, not from every
// replica at once: PostgreSQL's CREATE TABLE IF NOT EXISTS can fail when two
// race.
func (g *Grants) CreateTable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := g.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+g.table+` (
	key        text        PRIMARY KEY,
	version    bigint      NOT NULL,
	token      bytea       NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("sqlstore: create table %s: %w", g.table, err)
	}
	return nil
}

// Load implements [provider.GrantStore]. A row that does not open is an
// error wrapping [ErrCorrupt].
func (g *Grants) Load(ctx context.Context, key string) (string, int64, error) {
	if err := checkKey("Load", key); err != nil {
		return "", 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var (
		version int64
		sealed  []byte
	)
	err := g.db.QueryRowContext(ctx, g.load, key).Scan(&version, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("sqlstore: load: %w", jwtcache.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("sqlstore: load: %w", err)
	}
	if len(sealed) == 0 {
		return "", version, fmt.Errorf("sqlstore: load: deleted: %w", jwtcache.ErrNotFound)
	}
	token, err := g.ring.Open(sealed, seal.Binding(key, version))
	if err != nil {
		return "", version, fmt.Errorf("sqlstore: load: %w", err)
	}
	return string(token), version, nil
}

// Swap implements [provider.GrantStore].
func (g *Grants) Swap(ctx context.Context, key string, version int64, refreshToken string) (int64, error) {
	if err := checkKey("Swap", key); err != nil {
		return 0, err
	}
	if version < 0 || refreshToken == "" {
		return 0, fmt.Errorf("sqlstore: Swap(version %d, a refresh token of %d bytes): want a version of 0 or more and a refresh token: %w", version, len(refreshToken), jwtcache.ErrInvalid)
	}
	sealed, err := g.ring.Seal([]byte(refreshToken), seal.Binding(key, version+1))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var res sql.Result
	if version == 0 {
		res, err = g.db.ExecContext(ctx, g.insert, key, sealed)
	} else {
		res, err = g.db.ExecContext(ctx, g.update, key, version, version+1, sealed)
	}
	n, err := affected(res, err)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: swap: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("sqlstore: swap from version %d: %w", version, provider.ErrGrantConflict)
	}
	return version + 1, nil
}

// Delete implements [provider.GrantStore].
func (g *Grants) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if err := checkKey("Delete", key); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	n, err := affected(g.db.ExecContext(ctx, g.del, key, version))
	if err != nil {
		return false, fmt.Errorf("sqlstore: delete: %w", err)
	}
	return n == 1, nil
}

// affected returns the rows a statement affected.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// checkKey refuses a key that cannot be meant, or that a text column cannot
// hold (PostgreSQL's refuses NUL and invalid UTF-8).
func checkKey(call, key string) error {
	if key == "" || !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("sqlstore: %s: want a key of valid UTF-8, not empty, without NUL: %w", call, jwtcache.ErrInvalid)
	}
	return nil
}
