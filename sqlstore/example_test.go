package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib" // the driver: the application brings its own

	"github.com/seed7aeb0c6e/jwtcache/sqlstore"
)

// grantKey seals the refresh tokens: in production, 32 random bytes from a
// secret store.
var grantKey = bytes.Repeat([]byte{7}, 32)

// Example stores a user's first refresh token and its rotated successor. Most
// applications hand the Grants to provider.NewDelegated, which makes these
// calls. It needs a database (DATABASE_URL), so it has no output to check;
// TestPostgres_Example runs it on a real server.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	grants, err := sqlstore.New(db, sqlstore.Key("2026-11", grantKey))
	if err != nil {
		log.Fatal(err)
	}
	if err := grants.CreateTable(ctx); err != nil { // once, at set-up
		log.Fatal(err)
	}

	// The refresh token of the user's authorization code exchange: version 1.
	if _, err := grants.Swap(ctx, "user-42", 0, "first refresh token"); err != nil {
		log.Fatal(err)
	}
	// A refresh rotated it: store its successor from the version it replaces.
	// Another replica that rotated first makes this an ErrGrantConflict.
	_, version, err := grants.Load(ctx, "user-42")
	if err != nil {
		log.Fatal(err)
	}
	version, err = grants.Swap(ctx, "user-42", version, "rotated refresh token")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("user-42's refresh token is at version", version)
}
