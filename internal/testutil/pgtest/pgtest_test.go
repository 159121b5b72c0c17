package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-sync/tributary/internal/testutil/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

func TestServer(t *testing.T) {
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	db.Exec(t, "INSERT INTO t VALUES ($1, $2)", 1, "one")
	var v string
	if err := db.Conn.QueryRow(context.Background(), "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "one" {
		t.Fatalf("select: %q %v", v, err)
	}
	if pg.Version == "" {
		t.Error("no version")
	}

	// Password authentication is on: no password, or a wrong one, is refused.
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, db.DSNWithoutPassword()+" password=wrong"); err == nil {
		_ = c.Close(ctx)
		t.Fatal("a wrong password connected")
	}

	// Two databases are apart.
	other := pg.NewDatabase(t)
	if _, err := other.Conn.Exec(ctx, "SELECT * FROM t"); err == nil {
		t.Fatal("table t visible from another database")
	}
}
